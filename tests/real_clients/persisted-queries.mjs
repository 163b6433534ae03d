// Apollo Client's persisted-queries link (automatic persisted queries), unmodified, with SHA-256
// from node:crypto; `--get` turns on useGETForHashedQueries. The first run of a query sends its
// hash alone, is told PersistedQueryNotFound and sends query and hash; the next run sends the
// hash alone and is answered.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { HEADERS, URL_, assert, main, recordingFetch } from "./lib.mjs";

const useGET = process.argv.includes("--get");

await main(`persisted queries${useGET ? " (GET for hashed queries)" : ""}`, async () => {
  const { fetchFn, sent } = recordingFetch();
  const sha256 = (text) => createHash("sha256").update(text).digest("hex");
  const link = new PersistedQueryLink({ sha256, useGETForHashedQueries: useGET })
    .concat(new HttpLink({ uri: URL_, headers: HEADERS, fetch: fetchFn }));
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  // a text no one sent before, so the server cannot know its hash yet
  const query = gql`query Persisted${useGET ? "Get" : "Post"}${Date.now()} { viewer { role } }`;

  const first = await client.query({ query, fetchPolicy: "network-only" });
  assert.equal(first.data.viewer.role, "OWNER");
  assert.equal(sent.length, 2, JSON.stringify(sent));
  const [hashOnly, withQuery] = sent;
  assert.equal(hashOnly.method, useGET ? "GET" : "POST");
  if (!useGET) assert.equal(hashOnly.body.query, undefined);
  else assert.ok(!new URL(hashOnly.url).searchParams.has("query"));
  assert.equal(withQuery.method, "POST");
  assert.ok(withQuery.body.query && withQuery.body.extensions.persistedQuery.sha256Hash);

  const second = await client.query({ query, fetchPolicy: "network-only" });
  assert.equal(second.data.viewer.role, "OWNER");
  assert.equal(sent.length, 3, "the second run sent the hash alone, once");
  const again = sent[2];
  assert.equal(again.method, useGET ? "GET" : "POST");
  assert.equal(again.status, 200);
  if (!useGET) assert.equal(again.body.query, undefined);
  else assert.ok(!new URL(again.url).searchParams.has("query"));
});
