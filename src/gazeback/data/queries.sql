-- gazeback research dataset (R1): the documented query set, for DuckDB.
-- Run it from the dataset folder (relative paths), e.g.  cd dataset && duckdb -c ".read queries.sql"
-- or with Python:  duckdb.sql("SET file_search_path = 'dataset'") first.
-- Each block after "-- name:" is one query; the views come first.
-- Counts of households are contributor counts: publish a row only when it is at least 10.
--
-- traffic and leaks hold every row of every export (Hive partitions month=YYYY-MM and
-- contributor_bucket=NN: a query that names months reads only those folders). The merge also
-- writes one row per household and month and destination (household_traffic), per household,
-- month, destination and kind of data (household_leaks) and per household, device class and
-- destination over the whole period (household_devices), with the sums: "how many households"
-- reads those, a few rows per household, instead of every row. company_leaks counts the
-- households and leaks per month, company (parent company where known) and kind of data.

CREATE OR REPLACE VIEW traffic AS
SELECT * FROM read_parquet('traffic/*/*/*.parquet', hive_partitioning = true,
    hive_types = {'month': VARCHAR, 'contributor_bucket': INTEGER});
CREATE OR REPLACE VIEW leaks AS
SELECT * FROM read_parquet('leaks/*/*/*.parquet', hive_partitioning = true,
    hive_types = {'month': VARCHAR, 'contributor_bucket': INTEGER});
CREATE OR REPLACE VIEW household_traffic AS
SELECT * FROM read_parquet('household_traffic/*/*.parquet', hive_partitioning = true,
    hive_types = {'contributor_bucket': INTEGER});
CREATE OR REPLACE VIEW household_leaks AS
SELECT * FROM read_parquet('household_leaks/*/*.parquet', hive_partitioning = true,
    hive_types = {'contributor_bucket': INTEGER});
CREATE OR REPLACE VIEW household_devices AS
SELECT * FROM read_parquet('household_devices/*/*.parquet', hive_partitioning = true,
    hive_types = {'contributor_bucket': INTEGER});
CREATE OR REPLACE VIEW destinations AS SELECT * FROM read_parquet('destinations.parquet');
CREATE OR REPLACE VIEW company_leaks AS SELECT * FROM read_parquet('company_leaks.parquet');
CREATE OR REPLACE VIEW devices AS SELECT * FROM read_parquet('devices.parquet');
CREATE OR REPLACE VIEW contributors AS SELECT * FROM read_parquet('contributors.parquet');

-- name: companies_by_month
-- Which companies (parent company where known) reach how many households each month.
SELECT month, company, count(*) AS households, sum(requests) AS requests
FROM (
    SELECT h.month, coalesce(d.owner, d.company, h.dest_domain) AS company, h.contributor,
           sum(h.requests) AS requests
    FROM household_traffic h JOIN destinations d USING (dest_domain)
    GROUP BY ALL
)
GROUP BY ALL
ORDER BY month, households DESC, requests DESC, company;

-- name: countries_by_month
-- Where the companies that receive the traffic are based, month by month.
SELECT h.month, coalesce(d.country, '(unknown)') AS country,
       count(DISTINCT coalesce(d.owner, d.company, h.dest_domain)) AS companies,
       count(DISTINCT h.contributor) AS households, sum(h.requests) AS requests
FROM household_traffic h JOIN destinations d USING (dest_domain)
GROUP BY ALL
ORDER BY h.month, requests DESC, country;

-- name: kinds_of_data_by_company
-- Which kinds of personal data each company received, month by month. company_leaks is
-- this answer, summed by the merge household by household (the same rows as grouping
-- household_leaks joined to destinations by month, company and kind of data).
SELECT month, company, pii_type, households, leaks
FROM company_leaks
ORDER BY month, households DESC, leaks DESC, company, pii_type;

-- name: kinds_of_data_by_country
-- Kinds of personal data by the country of the company that received them, over time.
SELECT h.month, coalesce(d.country, '(unknown)') AS country, h.pii_type,
       count(DISTINCT h.contributor) AS households, sum(h.count) AS leaks
FROM household_leaks h JOIN destinations d USING (dest_domain)
GROUP BY ALL
ORDER BY h.month, leaks DESC, country, h.pii_type;

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
    SELECT h.month, h.contributor,
           count(DISTINCT coalesce(d.owner, d.company, h.dest_domain)) AS companies
    FROM household_traffic h JOIN destinations d USING (dest_domain)
    GROUP BY ALL
)
GROUP BY month
ORDER BY month;

-- name: device_classes_by_company
-- Which kinds of device talk to which companies (households, over the whole period).
SELECT h.device_class, coalesce(d.owner, d.company, h.dest_domain) AS company,
       count(DISTINCT h.contributor) AS households, sum(h.requests) AS requests
FROM household_devices h JOIN destinations d USING (dest_domain)
GROUP BY ALL
ORDER BY households DESC, requests DESC, h.device_class, company
LIMIT 200;

-- name: one_quarter_by_hour_of_day
-- When in the day devices reach trackers, for one quarter (reads only those months' folders).
SELECT hour_utc, dest_role, count(*) AS households, sum(requests) AS requests
FROM (
    SELECT hour(t.bucket_start) AS hour_utc, d.dest_role, t.contributor,
           sum(t.requests) AS requests
    FROM traffic t JOIN destinations d USING (dest_domain)
    WHERE t.month BETWEEN '2026-04' AND '2026-06'
    GROUP BY ALL
)
GROUP BY ALL
ORDER BY hour_utc, dest_role;
