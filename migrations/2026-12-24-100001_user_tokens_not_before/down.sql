ALTER TABLE users DROP COLUMN tokens_not_before;
