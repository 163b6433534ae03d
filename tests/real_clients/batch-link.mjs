// Apollo Client's BatchHttpLink, unmodified: queries made together go as one HTTP request (a JSON
// array), each answered in its place; twelve at once go as two batches (batchMax 10, the cap).
import { ApolloClient, InMemoryCache, gql } from "@apollo/client";
import { BatchHttpLink } from "@apollo/client/link/batch-http";
import { HEADERS, URL_, assert, main, recordingFetch } from "./lib.mjs";

await main("BatchHttpLink", async () => {
  const { fetchFn, sent } = recordingFetch();
  const client = new ApolloClient({
    link: new BatchHttpLink({ uri: URL_, headers: HEADERS, fetch: fetchFn, batchMax: 10, batchInterval: 20 }),
    cache: new InMemoryCache(),
  });
  const [viewer, tags, tenant] = await Promise.all([
    client.query({ query: gql`query Viewer { viewer { role } }` }),
    client.query({ query: gql`query Tags { tags { name } }` }),
    client.query({ query: gql`query Tenant { viewer { tenant { name } } }` }),
  ]);
  assert.equal(sent.length, 1, "the three queries went in one request");
  assert.ok(Array.isArray(sent[0].body) && sent[0].body.length === 3, JSON.stringify(sent[0]));
  assert.equal(sent[0].status, 200);
  assert.equal(viewer.data.viewer.role, "OWNER");
  assert.ok(Array.isArray(tags.data.tags));
  assert.equal(typeof tenant.data.viewer.tenant.name, "string");

  // one bad operation in a batch fails alone
  const [good, bad] = await Promise.all([
    client.query({ query: gql`query Again { viewer { role } }`, fetchPolicy: "network-only" }),
    client.query({ query: gql`query Broken { viewer { nope } }`, errorPolicy: "all" }),
  ]);
  assert.equal(sent.length, 2);
  assert.equal(good.data.viewer.role, "OWNER");
  assert.match(bad.error.errors[0].message, /nope/);

  const many = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      client.query({ query: gql`query Many${i} { viewer { role } }`, fetchPolicy: "network-only" })),
  );
  assert.ok(many.every((r) => r.data.viewer.role === "OWNER"));
  assert.deepEqual(sent.slice(2).map((s) => s.body.length).sort((a, b) => b - a), [10, 2]);
});
