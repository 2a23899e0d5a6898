DROP TABLE login_known_addresses;
ALTER TABLE login_throttle RENAME COLUMN last_attempt TO last_failure;
ALTER TABLE login_throttle RENAME COLUMN attempts TO failures;
