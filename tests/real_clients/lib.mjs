// What every client script shares: where the API is and who calls it (from the environment the
// pytest module sets), a fetch that records each request, and assertions that end the script.
import assert from "node:assert/strict";

export const URL_ = process.env.BRANDGRAPH_URL; // e.g. http://127.0.0.1:8000/graphql
export const TOKEN = process.env.BRANDGRAPH_TOKEN; // an API key or a token
if (!URL_ || !TOKEN) {
  console.error("set BRANDGRAPH_URL (the /graphql address) and BRANDGRAPH_TOKEN");
  process.exit(2);
}
export const HEADERS = { Authorization: `Bearer ${TOKEN}` };

/** A fetch that keeps what was sent and answered, for the scripts to check the wire. */
export function recordingFetch() {
  const sent = [];
  async function fetchFn(input, init = {}) {
    const url = typeof input === "string" ? input : input.url;
    const method = (init.method || "GET").toUpperCase();
    const response = await fetch(input, init);
    sent.push({
      url,
      method,
      body: init.body === undefined ? null : JSON.parse(init.body),
      accept: new Headers(init.headers).get("accept"),
      status: response.status,
      contentType: response.headers.get("content-type"),
    });
    return response;
  }
  return { fetchFn, sent };
}

export async function main(name, body) {
  try {
    await body();
    console.log(`ok: ${name}`);
    process.exit(0);
  } catch (error) {
    console.error(`FAILED: ${name}`);
    console.error(error);
    process.exit(1);
  }
}

export { assert };
