ALTER TABLE accounts RESET (fillfactor);
ALTER TABLE listing_hours RESET (fillfactor);
-- Hour rows nothing reserved are what a lazily made table would not hold.
DELETE FROM listing_hours WHERE reserved = 0;
