// graphql-http's server audit (the GraphQL over HTTP working group's reference checks of the
// spec's MUSTs, SHOULDs and MAYs) against the API. Every audit must pass, except those listed in
// ALLOWED, each a choice the spec leaves open or where a newer draft asks for something else
// (docs/api.md, "GraphQL over HTTP").
import { serverAudits } from "graphql-http";
import { HEADERS, URL_, main } from "./lib.mjs";

const ALLOWED = {
  // the current draft: "If the variable values cannot be coerced ..., status code 422 SHOULD be
  // used" (and the same for validation); graphql-http 1.23 audits an older draft's 400
  "86EE": "422, not 400, on variable coercion failure (current draft)",
  // the current draft: a request that is not a well-formed GraphQL-over-HTTP request gets 422
  // under application/graphql-response+json; under application/json it is 400 (as it was)
  "423L": "422, not 400, on a missing query under application/graphql-response+json (current draft)",
};

await main("graphql-http server audit", async () => {
  const fetchFn = (input, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set("authorization", HEADERS.Authorization);
    return fetch(input, { ...init, headers });
  };
  const failed = [];
  let passed = 0;
  for (const audit of serverAudits({ url: URL_, fetchFn })) {
    const result = await audit.fn();
    if (result.status === "ok") {
      passed += 1;
    } else if ((result.status === "warn" || result.status === "notice") && ALLOWED[audit.id]) {
      console.log(`allowed: ${audit.id} ${audit.name} (${ALLOWED[audit.id]})`);
    } else {
      failed.push(`${result.status}: ${audit.id} ${audit.name}: ${result.reason}`);
    }
  }
  console.log(`${passed} audits passed`);
  if (failed.length) throw new Error(failed.join("\n"));
});
