-- Offers (docs/offers.md, docs/profiles.md "Preferences").
SELECT bg_enable_tenant_rls('recommendation_weights'::regclass);

-- Catalogue attributes and preferences, searchable by array overlap. A GIN index cannot lead
-- with tenant_id without the btree_gin extension, which the embedded PostgreSQL does not ship:
-- the GIN indexes hold the array alone and every query adds the tenant (and RLS) as a recheck;
-- the btree indexes lead with tenant_id as everywhere else.
CREATE INDEX ix_products_genres ON products USING gin (genres);
CREATE INDEX ix_products_creators ON products USING gin (creators);
CREATE INDEX ix_products_type ON products (tenant_id, brand_id, lower(product_type));
CREATE INDEX ix_customer_profiles_genres ON customer_profiles USING gin (genres);
CREATE INDEX ix_customer_profiles_types ON customer_profiles USING gin (types);
CREATE INDEX ix_customer_profiles_creators ON customer_profiles USING gin (creators);

-- Preferences of the given customers' profiles (every customer when p_customers is NULL), per
-- brand and tenant-wide, from their counted orders (not cancelled or refunded), the products
-- those orders hold, and their watchlist events. Only existing profile rows are updated:
-- bg_refresh_profiles writes them first (bg_refresh_customer_profiles runs both).
--   genres: each line's quantity split evenly between its product's genres; weight = a genre's
--     share of the quantity of lines that name a genre; the 5 heaviest (ties by name).
--   types: weight = a type's share of the quantity of lines that name a type; the 5 heaviest.
--   creators: every creator of a product bought (at most 50, by name).
--   price range: 25th and 75th percentile (continuous) of the lines' unit prices.
--   preferred days / hours: the ISO weekday(s) / UTC hour(s) with the most orders (ties kept).
--   city / country: declared on the customer, else the most bought product city / country.
--   watchlist: products whose latest watchlist_added / watchlist_removed event (naming the
--     product by properties.sku or properties.productId) is watchlist_added.
CREATE FUNCTION bg_refresh_preferences(p_tenant uuid, p_customers uuid[]) RETURNS integer
LANGUAGE sql VOLATILE
AS $$
  WITH counted AS (
    SELECT o.customer_id, o.brand_id, o.id AS order_id, o.placed_at
      FROM orders o
     WHERE o.tenant_id = p_tenant AND o.status NOT IN ('cancelled', 'refunded')
       AND (p_customers IS NULL OR o.customer_id = ANY (p_customers))
  ), ord AS (
    SELECT c.customer_id, c.brand_id AS scope, c.placed_at FROM counted c
    UNION ALL
    SELECT c.customer_id, '00000000-0000-0000-0000-000000000000'::uuid, c.placed_at FROM counted c
  ), line AS (
    SELECT c.customer_id, c.brand_id, i.quantity, i.unit_price_cents,
           coalesce(pr.genres, '{}') AS genres, lower(pr.product_type) AS product_type,
           coalesce(pr.creators, '{}') AS creators, pr.city, pr.country
      FROM counted c
      JOIN order_items i ON i.tenant_id = p_tenant AND i.order_id = c.order_id
      LEFT JOIN products pr ON pr.tenant_id = p_tenant AND pr.id = i.product_id
  ), lines AS (
    SELECT l.*, l.brand_id AS scope FROM line l
    UNION ALL
    SELECT l.*, '00000000-0000-0000-0000-000000000000'::uuid FROM line l
  ), genre_w AS (
    SELECT l.customer_id, l.scope, g, sum(l.quantity::numeric / cardinality(l.genres)) AS w
      FROM lines l CROSS JOIN LATERAL unnest(l.genres) AS g
     GROUP BY 1, 2, 3
  ), genre_top AS (
    SELECT x.customer_id, x.scope, jsonb_object_agg(x.g, round(x.w / x.total, 3)) AS weights,
           array_agg(x.g ORDER BY x.w DESC, x.g) AS names
      FROM (SELECT gw.*, sum(gw.w) OVER (PARTITION BY gw.customer_id, gw.scope) AS total,
                   row_number() OVER (PARTITION BY gw.customer_id, gw.scope ORDER BY gw.w DESC, gw.g) AS rn
              FROM genre_w gw) x
     WHERE x.rn <= 5
     GROUP BY 1, 2
  ), type_w AS (
    SELECT l.customer_id, l.scope, l.product_type AS t, sum(l.quantity)::numeric AS w
      FROM lines l WHERE l.product_type IS NOT NULL
     GROUP BY 1, 2, 3
  ), type_top AS (
    SELECT x.customer_id, x.scope, jsonb_object_agg(x.t, round(x.w / x.total, 3)) AS weights,
           array_agg(x.t ORDER BY x.w DESC, x.t) AS names
      FROM (SELECT tw.*, sum(tw.w) OVER (PARTITION BY tw.customer_id, tw.scope) AS total,
                   row_number() OVER (PARTITION BY tw.customer_id, tw.scope ORDER BY tw.w DESC, tw.t) AS rn
              FROM type_w tw) x
     WHERE x.rn <= 5
     GROUP BY 1, 2
  ), creator_all AS (
    SELECT l.customer_id, l.scope, (array_agg(DISTINCT cr ORDER BY cr))[1:50] AS names
      FROM lines l CROSS JOIN LATERAL unnest(l.creators) AS cr
     GROUP BY 1, 2
  ), price AS (
    SELECT l.customer_id, l.scope,
           round(percentile_cont(0.25) WITHIN GROUP (ORDER BY l.unit_price_cents))::bigint AS low,
           round(percentile_cont(0.75) WITHIN GROUP (ORDER BY l.unit_price_cents))::bigint AS high
      FROM lines l
     GROUP BY 1, 2
  ), day_n AS (
    SELECT o.customer_id, o.scope, extract(isodow FROM o.placed_at AT TIME ZONE 'UTC')::smallint AS d, count(*) AS n
      FROM ord o GROUP BY 1, 2, 3
  ), days AS (
    SELECT x.customer_id, x.scope, array_agg(x.d ORDER BY x.d) AS days
      FROM (SELECT dn.*, max(dn.n) OVER (PARTITION BY dn.customer_id, dn.scope) AS top FROM day_n dn) x
     WHERE x.n = x.top GROUP BY 1, 2
  ), hour_n AS (
    SELECT o.customer_id, o.scope, extract(hour FROM o.placed_at AT TIME ZONE 'UTC')::smallint AS h, count(*) AS n
      FROM ord o GROUP BY 1, 2, 3
  ), hours AS (
    SELECT x.customer_id, x.scope, array_agg(x.h ORDER BY x.h) AS hours
      FROM (SELECT hn.*, max(hn.n) OVER (PARTITION BY hn.customer_id, hn.scope) AS top FROM hour_n hn) x
     WHERE x.n = x.top GROUP BY 1, 2
  ), city AS (
    SELECT DISTINCT ON (l.customer_id, l.scope) l.customer_id, l.scope, l.city
      FROM lines l WHERE l.city IS NOT NULL
     GROUP BY l.customer_id, l.scope, l.city
     ORDER BY l.customer_id, l.scope, count(*) DESC, l.city
  ), country AS (
    SELECT DISTINCT ON (l.customer_id, l.scope) l.customer_id, l.scope, l.country
      FROM lines l WHERE l.country IS NOT NULL
     GROUP BY l.customer_id, l.scope, l.country
     ORDER BY l.customer_id, l.scope, count(*) DESC, l.country
  ), watch_ev AS (
    SELECT e.customer_id, e.brand_id AS scope, pr.id AS product_id, e.name, e.occurred_at, e.created_at
      FROM tracked_events e
      JOIN products pr ON pr.tenant_id = p_tenant
       AND (pr.sku = e.properties ->> 'sku' OR pr.id::text = e.properties ->> 'productId')
       -- a brand's event names that brand's products (or tenant-wide ones), never another brand's
       AND (pr.brand_id IS NULL OR e.brand_id IS NULL OR pr.brand_id = e.brand_id)
     WHERE e.tenant_id = p_tenant AND e.name IN ('watchlist_added', 'watchlist_removed')
       AND (p_customers IS NULL OR e.customer_id = ANY (p_customers))
  ), watch_scoped AS (
    SELECT w.* FROM watch_ev w WHERE w.scope IS NOT NULL
    UNION ALL
    SELECT w.customer_id, '00000000-0000-0000-0000-000000000000'::uuid, w.product_id, w.name, w.occurred_at,
           w.created_at FROM watch_ev w
  ), watch AS (
    SELECT x.customer_id, x.scope, array_agg(x.product_id ORDER BY x.product_id) AS products
      FROM (SELECT DISTINCT ON (ws.customer_id, ws.scope, ws.product_id) ws.*
              FROM watch_scoped ws
             ORDER BY ws.customer_id, ws.scope, ws.product_id, ws.occurred_at DESC, ws.created_at DESC) x
     WHERE x.name = 'watchlist_added'
     GROUP BY 1, 2
  ), target AS (
    SELECT p.customer_id, p.brand_id,
           coalesce(gt.weights, '{}') AS genre_weights, coalesce(gt.names, '{}') AS genres,
           coalesce(tt.weights, '{}') AS type_weights, coalesce(tt.names, '{}') AS types,
           coalesce(ca.names, '{}') AS creators, pc.low, pc.high,
           coalesce(dy.days, '{}') AS days, coalesce(hr.hours, '{}') AS hours,
           coalesce(cu.city, ci.city) AS city, upper(coalesce(cu.country, co.country)) AS country,
           coalesce(wa.products, '{}') AS watchlist
      FROM customer_profiles p
      JOIN customers cu ON cu.tenant_id = p_tenant AND cu.id = p.customer_id
      LEFT JOIN genre_top gt ON gt.customer_id = p.customer_id AND gt.scope = p.brand_id
      LEFT JOIN type_top tt ON tt.customer_id = p.customer_id AND tt.scope = p.brand_id
      LEFT JOIN creator_all ca ON ca.customer_id = p.customer_id AND ca.scope = p.brand_id
      LEFT JOIN price pc ON pc.customer_id = p.customer_id AND pc.scope = p.brand_id
      LEFT JOIN days dy ON dy.customer_id = p.customer_id AND dy.scope = p.brand_id
      LEFT JOIN hours hr ON hr.customer_id = p.customer_id AND hr.scope = p.brand_id
      LEFT JOIN city ci ON ci.customer_id = p.customer_id AND ci.scope = p.brand_id
      LEFT JOIN country co ON co.customer_id = p.customer_id AND co.scope = p.brand_id
      LEFT JOIN watch wa ON wa.customer_id = p.customer_id AND wa.scope = p.brand_id
     WHERE p.tenant_id = p_tenant AND (p_customers IS NULL OR p.customer_id = ANY (p_customers))
  ), updated AS (
    UPDATE customer_profiles p SET
      genre_weights = t.genre_weights, genres = t.genres, type_weights = t.type_weights, types = t.types,
      creators = t.creators, price_low_cents = t.low, price_high_cents = t.high, preferred_days = t.days,
      preferred_hours = t.hours, city = t.city, country = t.country, watchlist = t.watchlist
      FROM target t
     WHERE p.tenant_id = p_tenant AND p.customer_id = t.customer_id AND p.brand_id = t.brand_id
    RETURNING 1
  )
  SELECT count(*)::int FROM updated
$$;
GRANT EXECUTE ON FUNCTION bg_refresh_preferences(uuid, uuid[]) TO brandgraph_app;

-- Metrics and scores (bg_refresh_profiles), then preferences: the one entry point of the
-- incremental path, the imports and the rebuild.
CREATE FUNCTION bg_refresh_customer_profiles(p_tenant uuid, p_customers uuid[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  written integer;
BEGIN
  written := bg_refresh_profiles(p_tenant, p_customers);
  PERFORM bg_refresh_preferences(p_tenant, p_customers);
  RETURN written;
END
$$;
GRANT EXECUTE ON FUNCTION bg_refresh_customer_profiles(uuid, uuid[]) TO brandgraph_app;

-- Recommendation score of every customer of a product's brand for that product (docs/offers.md):
-- one row per customer known to the brand, with each factor's points; the weights are the
-- brand's (recommendation_weights) or the defaults 25/20/20/15/10/5/5. The brand's profile
-- supplies preferences; location falls back to the customer's declared city and country.
-- Inlined by the planner (a single SELECT, STABLE), so callers' filters and joins push down.
CREATE FUNCTION bg_recommendations(p_tenant uuid, p_product uuid)
RETURNS TABLE (customer_id uuid, score integer, genre integer, type integer, creator integer, price integer,
               location integer, engagement integer, watchlist integer)
LANGUAGE sql STABLE
AS $$
  SELECT s.customer_id,
         least(100, s.genre + s.type + s.creator + s.price + s.location + s.engagement + s.watchlist),
         s.genre, s.type, s.creator, s.price, s.location, s.engagement, s.watchlist
    FROM (
      SELECT cb.customer_id,
             CASE WHEN pr.genres && p.genres THEN coalesce(w.genre, 25) ELSE 0 END AS genre,
             CASE WHEN lower(pr.product_type) = ANY (p.types) THEN coalesce(w.type, 20) ELSE 0 END AS type,
             CASE WHEN pr.creators && p.creators THEN coalesce(w.creator, 20) ELSE 0 END AS creator,
             CASE WHEN pr.price_cents BETWEEN p.price_low_cents AND p.price_high_cents
                  THEN coalesce(w.price, 15) ELSE 0 END AS price,
             CASE WHEN pr.city IS NOT NULL AND lower(pr.city) = lower(coalesce(p.city, c.city))
                       AND (pr.country IS NULL OR pr.country = upper(coalesce(p.country, c.country)))
                  THEN coalesce(w.location, 10)
                  WHEN pr.country IS NOT NULL AND pr.country = upper(coalesce(p.country, c.country))
                  THEN coalesce(w.location, 10) / 2
                  ELSE 0 END AS location,
             CASE WHEN p.engagement_score >= 70 THEN coalesce(w.engagement, 5) ELSE 0 END AS engagement,
             CASE WHEN pr.id = ANY (p.watchlist) THEN coalesce(w.watchlist, 5) ELSE 0 END AS watchlist
        FROM products pr
        JOIN customer_brands cb ON cb.tenant_id = p_tenant AND cb.brand_id = pr.brand_id
        JOIN customers c ON c.tenant_id = p_tenant AND c.id = cb.customer_id
        LEFT JOIN recommendation_weights w ON w.tenant_id = p_tenant AND w.brand_id = pr.brand_id
        LEFT JOIN customer_profiles p
          ON p.tenant_id = p_tenant AND p.brand_id = pr.brand_id AND p.customer_id = cb.customer_id
       WHERE pr.tenant_id = p_tenant AND pr.id = p_product
    ) s
$$;
GRANT EXECUTE ON FUNCTION bg_recommendations(uuid, uuid) TO brandgraph_app;
