-- Incidents (R-32, R-42; SM 4.3–4.8): raised by the abnormal-access rules (server/audit/
-- anomaly) and shown to the system administrator and the operations manager, who close them
-- with cause and measures. level: SM 4.3 (1 … 5). action: what was done at once (suspended:
-- the account or terminal was stopped; recorded: nothing but this row).
CREATE TABLE incident (
  pk             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id      SMALLINT UNSIGNED NOT NULL,
  level          TINYINT UNSIGNED NOT NULL,
  source         VARCHAR(16) CHARACTER SET ascii NOT NULL,  -- anomaly (later: operations)
  rule           VARCHAR(64) CHARACTER SET ascii NOT NULL,
  state          VARCHAR(16) CHARACTER SET ascii NOT NULL,  -- open, closed
  action         VARCHAR(16) CHARACTER SET ascii NOT NULL,  -- suspended, recorded
  account_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  client_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  terminal_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  institution_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  detail         VARCHAR(2000) NOT NULL,
  detected_at    DATETIME(6) NOT NULL,
  closed_at      DATETIME(6) NULL,
  closed_by      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  cause          VARCHAR(2000) NULL,
  measures       VARCHAR(2000) NULL,
  PRIMARY KEY (pk),
  KEY k_incident_state (tenant_id, state, detected_at)
) ENGINE=InnoDB;
