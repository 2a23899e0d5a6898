DROP TABLE bank_matches;
DROP TABLE bank_lines;
DROP TABLE bank_statements;
