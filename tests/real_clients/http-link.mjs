// Apollo Client with its HttpLink, unmodified: a query, a mutation and the query again (from the
// network), and a document the server refuses, which Apollo reports as GraphQL errors.
import { ApolloClient, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { HEADERS, URL_, assert, main, recordingFetch } from "./lib.mjs";

await main("HttpLink", async () => {
  const { fetchFn, sent } = recordingFetch();
  const client = new ApolloClient({
    link: new HttpLink({ uri: URL_, headers: HEADERS, fetch: fetchFn }),
    cache: new InMemoryCache(),
  });
  const viewer = await client.query({ query: gql`query Viewer { viewer { role } }` });
  assert.equal(viewer.data.viewer.role, "OWNER");
  // Apollo Client 4 asks for the spec's media type first, and gets it
  assert.match(sent[0].accept, /application\/graphql-response\+json/);
  assert.match(sent[0].contentType, /^application\/graphql-response\+json/);

  const name = `apollo-${Date.now()}`;
  const created = await client.mutate({
    mutation: gql`mutation CreateTag($n: String!) { createTag(input: {name: $n}) { tag { name } errors { code } } }`,
    variables: { n: name },
  });
  assert.deepEqual(created.data.createTag.errors, []);
  const tags = await client.query({ query: gql`query Tags { tags { name } }`, fetchPolicy: "network-only" });
  assert.ok(tags.data.tags.some((t) => t.name === name), JSON.stringify(tags.data));

  // refused before execution: 422 under graphql-response+json, which Apollo reads as errors
  const refused = await client.query({ query: gql`query Bad { viewer { nope } }`, errorPolicy: "all" });
  assert.ok(CombinedGraphQLErrors.is(refused.error), String(refused.error));
  assert.match(refused.error.errors[0].message, /nope/);
  assert.equal(sent.at(-1).status, 422);
});
