-- gazeback research dataset (R1): the documented query set, for DuckDB.
-- Run it from the dataset folder (relative paths), e.g.  cd dataset && duckdb -c ".read queries.sql"
-- or with Python:  duckdb.sql("SET file_search_path = 'dataset'") first.
-- Each block after "-- name:" is one query; the views come first.
-- Counts of households are contributor counts: publish a row only when it is at least 10.

CREATE OR REPLACE VIEW traffic AS
SELECT * FROM read_parquet('traffic/*/*/*.parquet', hive_partitioning = true,
    hive_types = {'month': VARCHAR, 'contributor_bucket': INTEGER});
CREATE OR REPLACE VIEW leaks AS
SELECT * FROM read_parquet('leaks/*/*/*.parquet', hive_partitioning = true,
    hive_types = {'month': VARCHAR, 'contributor_bucket': INTEGER});
CREATE OR REPLACE VIEW destinations AS SELECT * FROM read_parquet('destinations.parquet');
CREATE OR REPLACE VIEW devices AS SELECT * FROM read_parquet('devices.parquet');
CREATE OR REPLACE VIEW contributors AS SELECT * FROM read_parquet('contributors.parquet');

-- name: companies_by_month
-- Which companies (parent company where known) reach how many households each month.
SELECT t.month, coalesce(d.owner, d.company, t.dest_domain) AS company,
       count(DISTINCT t.contributor) AS households, sum(t.requests) AS requests
FROM traffic t JOIN destinations d USING (dest_domain)
GROUP BY ALL
ORDER BY t.month, households DESC, requests DESC, company;

-- name: countries_by_month
-- Where the companies that receive the traffic are based, month by month.
SELECT t.month, coalesce(d.country, '(unknown)') AS country,
       count(DISTINCT coalesce(d.owner, d.company, t.dest_domain)) AS companies,
       count(DISTINCT t.contributor) AS households, sum(t.requests) AS requests
FROM traffic t JOIN destinations d USING (dest_domain)
GROUP BY ALL
ORDER BY t.month, requests DESC, country;

-- name: kinds_of_data_by_company
-- Which kinds of personal data each company received, month by month.
SELECT l.month, coalesce(d.owner, d.company, l.dest_domain) AS company, l.pii_type,
       count(DISTINCT l.contributor) AS households, sum(l.count) AS leaks
FROM leaks l JOIN destinations d USING (dest_domain)
GROUP BY ALL
ORDER BY l.month, households DESC, leaks DESC, company, l.pii_type;

-- name: kinds_of_data_by_country
-- Kinds of personal data by the country of the company that received them, over time.
SELECT l.month, coalesce(d.country, '(unknown)') AS country, l.pii_type,
       count(DISTINCT l.contributor) AS households, sum(l.count) AS leaks
FROM leaks l JOIN destinations d USING (dest_domain)
GROUP BY ALL
ORDER BY l.month, leaks DESC, country, l.pii_type;

-- name: hashed_share_by_kind
-- How often each kind of data travelled hashed or encoded rather than plain, per month.
SELECT month, pii_type,
       sum(count) FILTER (WHERE transform_chain NOT IN ('plain', '(other)')) AS transformed,
       sum(count) AS leaks,
       round(100.0 * sum(count) FILTER (WHERE transform_chain NOT IN ('plain', '(other)'))
             / sum(count), 1) AS transformed_pct
FROM leaks
GROUP BY ALL
ORDER BY month, pii_type;

-- name: companies_per_household
-- How many companies a household's devices talk to in a month (median and 90th percentile).
SELECT month, count(*) AS households, median(companies) AS median_companies,
       quantile_cont(companies, 0.9) AS p90_companies
FROM (
    SELECT t.month, t.contributor,
           count(DISTINCT coalesce(d.owner, d.company, t.dest_domain)) AS companies
    FROM traffic t JOIN destinations d USING (dest_domain)
    GROUP BY ALL
)
GROUP BY month
ORDER BY month;

-- name: device_classes_by_company
-- Which kinds of device talk to which companies (households, over the whole period).
SELECT v.device_class, coalesce(d.owner, d.company, t.dest_domain) AS company,
       count(DISTINCT t.contributor) AS households, sum(t.requests) AS requests
FROM traffic t
JOIN devices v USING (contributor, device)
JOIN destinations d USING (dest_domain)
GROUP BY ALL
ORDER BY households DESC, requests DESC, v.device_class, company
LIMIT 200;
