// graphql-ws's client, unmodified (ws as its WebSocket): subscribe to the tenant's audit events,
// make changes over HTTP, and receive their entries.
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { HEADERS, URL_, assert, main } from "./lib.mjs";

async function createTag(name) {
  const response = await fetch(URL_, {
    method: "POST",
    headers: { ...HEADERS, "content-type": "application/json" },
    body: JSON.stringify({
      query: "mutation($n: String!) { createTag(input: {name: $n}) { errors { code } } }",
      variables: { n: name },
    }),
  });
  assert.equal(response.status, 200);
}

await main("graphql-ws subscription", async () => {
  const client = createClient({
    url: URL_.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: HEADERS,
    retryAttempts: 0,
  });
  const prefix = `ws-${Date.now()}-`;
  let done = false;
  try {
    const received = new Promise((resolve, reject) => {
      const dispose = client.subscribe(
        { query: "subscription { auditEvents { action targetType summary } }" },
        {
          next: (message) => {
            if (JSON.stringify(message.data).includes(prefix)) {
              dispose();
              resolve(message.data.auditEvents);
            }
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    received.finally(() => { done = true; });
    // the server may register the subscription after the first change is made: a change every
    // 200 ms until one of them arrives (30 at most)
    for (let i = 0; i < 30 && !done; i += 1) {
      await createTag(`${prefix}${i}`);
      await Promise.race([received, new Promise((resolve) => setTimeout(resolve, 200))]);
    }
    const entry = await Promise.race([received, new Promise((resolve) => setTimeout(resolve, 5000, null))]);
    assert.ok(entry, "no audit event arrived");
    assert.equal(entry.action, "tag.create");
    assert.equal(entry.targetType, "Tag");
  } finally {
    await client.dispose();
  }
});
