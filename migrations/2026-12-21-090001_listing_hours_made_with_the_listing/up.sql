-- A listing's hour rows are made with the listing (and when its window
-- grows), so that an order only locks and updates rows that exist: no
-- insert, no foreign-key check and no second index entry per hour on the
-- order path (docs/performance.md, "Where the time goes").
INSERT INTO listing_hours (listing_id, hour, capacity, reserved)
SELECT l.id, h, l.gpus, 0
FROM listings l
     CROSS JOIN LATERAL generate_series(l.available_from, l.available_until - interval '1 hour', interval '1 hour') AS h
ORDER BY 1, 2
ON CONFLICT (listing_id, hour) DO NOTHING;

-- Room on each page for the next version of a row, so that updating a
-- reservation or an account's balances is a HOT update (no index entry).
-- Applies to pages written from now on.
ALTER TABLE listing_hours SET (fillfactor = 70);
ALTER TABLE accounts SET (fillfactor = 50);
