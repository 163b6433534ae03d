"""Design with Canva: autofill one of the brand's Canva brand templates with a campaign's headline
and copy, as a Brandgraph job (``canva_design``) with progress, returning the design's edit and
view links and its thumbnail.

Canva's autofill is itself asynchronous: ``POST /rest/v1/autofills`` starts a Canva job, ``GET
/rest/v1/autofills/{id}`` tells when it is done. The Canva job's id is stored on the Brandgraph
job (``params.canva_job_id``) before it is polled, so a retried delivery polls the same Canva job
instead of starting a second design. The OAuth token is refreshed before expiry and the new tokens
stored encrypted; no token reaches the job's params, result or error.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from sqlalchemy import select, update

from domain.ai import providers
from domain.ai.models import AiConnection, Provider
from domain.ai.service import FEATURE, load_credentials
from domain.audit import service as audit
from domain.campaigns.models import Campaign
from domain.config import get_settings
from domain.errors import DomainError, InvalidState, Validator
from domain.jobs import service as jobs
from domain.jobs.models import Job
from domain.platform import crypto
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize
from domain.tenancy.tenants import require_feature

POLL_SECONDS = 1.0
POLLS = 120


class CanvaFailed(Exception):
    """Canva refused or failed the autofill (its message, never a token)."""


async def start_design(principal: Principal, campaign_id: uuid.UUID, brand_template_id: str, headline: str,
                       body: str) -> Job:
    authorize(principal, Action.COPILOT_CAMPAIGN)
    v = Validator()
    for field, value, limit in (("brandTemplateId", brand_template_id, 128), ("headline", headline, 300),
                                ("body", body, 3000)):
        if not isinstance(value, str) or not value.strip():
            v.add(field, f"{field} is required")
        elif len(value) > limit:
            v.add(field, f"{field} is longer than {limit} characters")
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await require_feature(s, principal.tenant_id, FEATURE)
        campaign = await scoping.load_brand_owned(s, principal, Campaign, campaign_id, what="campaign",
                                                  field="campaignId")
        authorize(principal, Action.COPILOT_CAMPAIGN, brand_id=campaign.brand_id)
        row = await s.scalar(select(AiConnection).where(AiConnection.tenant_id == principal.tenant_id,
                                                        AiConnection.provider == Provider.CANVA.value))
        if row is None or not row.credentials_encrypted:
            raise InvalidState("Canva is not connected: an owner or admin connects it in the AI settings", field=None)
        allowed = row.settings.get("brand_template_ids") or []
        if brand_template_id not in allowed:
            raise DomainError("not one of the brand templates chosen in the Canva connection's settings",
                              field="brandTemplateId")
        params = {"campaign_id": str(campaign.id), "brand_template_id": brand_template_id,
                  "title": f"{campaign.name}"[:200],
                  "data": {"headline": {"type": "text", "text": headline}, "body": {"type": "text", "text": body}}}
        job = await jobs.create(s, principal, "canva_design", canva_design, brand_id=campaign.brand_id, params=params)
        audit.record(s, principal, "copilot.design", "Campaign", campaign.id, brand_id=campaign.brand_id,
                     summary={"job_id": str(job.id), "brand_template_id": brand_template_id})
    return job


async def _token(http: httpx.AsyncClient, tenant_id: uuid.UUID) -> str:
    async with tenant_session(tenant_id) as s:
        found = await load_credentials(s, tenant_id, Provider.CANVA)
    if found is None:
        raise CanvaFailed("Canva is no longer connected")
    creds, _ = found
    refreshed = await providers.refresh_canva(http, creds)
    if refreshed:
        async with tenant_session(tenant_id) as s:
            await s.execute(update(AiConnection).where(
                AiConnection.tenant_id == tenant_id, AiConnection.provider == Provider.CANVA.value).values(
                credentials_encrypted=crypto.encrypt(json.dumps({**creds, **refreshed})),
                credential_hint=providers.mask(refreshed["access_token"])))
        return refreshed["access_token"]
    return creds["access_token"]


def _failure(r: httpx.Response, token: str) -> CanvaFailed:
    """Canva's refusal, with the access token masked should Canva echo it."""
    outcome = providers._http_outcome(r)
    return CanvaFailed(providers.scrub(f"Canva answered {r.status_code}: {outcome.message}"[:300],
                                       {"access_token": token}))


@jobs.job_actor("canva_design", time_limit=600_000)
async def canva_design(job: Job, progress: jobs.Progress) -> dict[str, Any]:
    p = dict(job.params)
    base = f"{get_settings().canva_api_url}/rest/v1"
    await progress.set_total(2)
    async with httpx.AsyncClient(timeout=30) as http:
        token = await _token(http, job.tenant_id)
        headers = {"Authorization": f"Bearer {token}"}
        canva_job = p.get("canva_job_id")
        if not canva_job:  # once: a retry polls the Canva job already started
            r = await http.post(f"{base}/autofills", headers=headers, json={
                "brand_template_id": p["brand_template_id"], "title": p["title"], "data": p["data"]})
            if r.status_code not in (200, 202):
                raise _failure(r, token)
            canva_job = r.json()["job"]["id"]
            async with tenant_session(job.tenant_id) as s:
                await s.execute(update(Job).where(Job.tenant_id == job.tenant_id, Job.id == job.id).values(
                    params={**p, "canva_job_id": canva_job}))
        await progress.advance()
        for _ in range(POLLS):
            r = await http.get(f"{base}/autofills/{canva_job}", headers=headers)
            if r.status_code != 200:
                raise _failure(r, token)
            state = r.json()["job"]
            if state["status"] == "success":
                design = state["result"]["design"]
                await progress.advance()
                return {"designId": design["id"], "editUrl": design["urls"]["edit_url"],
                        "viewUrl": design["urls"]["view_url"],
                        "thumbnailUrl": (design.get("thumbnail") or {}).get("url")}
            if state["status"] == "failed":
                message = str((state.get("error") or {}).get("message", "failed"))
                raise CanvaFailed(providers.scrub(f"Canva could not autofill: {message}", {"access_token": token}))
            await asyncio.sleep(POLL_SECONDS)
    raise CanvaFailed("Canva's autofill did not finish in time")
