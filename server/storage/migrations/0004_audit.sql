-- Audit trail (issue 5, R-30, R-31, R-34): one row per request, written before the
-- response is sent (a write's row in the write's own transaction; reads' rows in batches
-- that share one commit). The server's DB user may only SELECT and INSERT these tables
-- (grants are set per table by the embedded provisioning; see server/audit/README.md for
-- an external database); retention purges run as a separate maintenance user.
--
-- audit_event holds what was done; audit_seal the SHA-256 hash chain over it, added by the
-- server's sealer once every lower id has committed or was rolled back:
--   hash(n) = SHA-256(hash(previous sealed event) || canonical bytes of event n)
-- so a changed, deleted or inserted event row breaks the chain at that row.
CREATE TABLE audit_event (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id       SMALLINT UNSIGNED NOT NULL,
  recorded        BIGINT NOT NULL,                       -- ms since the epoch
  request_id      VARCHAR(64) CHARACTER SET ascii NOT NULL,
  interaction     VARCHAR(24) CHARACTER SET ascii NOT NULL,  -- read, search-type, create, … (restful-interaction codes)
  action          CHAR(1) CHARACTER SET ascii NOT NULL,     -- C R U D E
  method          VARCHAR(8) CHARACTER SET ascii NOT NULL,
  path            VARCHAR(2048) NOT NULL,                   -- below the FHIR base, with the query
  status          SMALLINT UNSIGNED NOT NULL,
  outcome         TINYINT UNSIGNED NOT NULL,                -- 0 success, 4 minor failure, 8 serious failure
  denied          TINYINT(1) NOT NULL,                      -- refused by authentication or access control
  account_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  role            VARCHAR(16) CHARACTER SET ascii NULL,
  institution_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  fhir_user       VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NULL,
  client_id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  terminal_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  peer            VARCHAR(64) CHARACTER SET ascii NULL,
  patient_context VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  patients        TEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- Patient ids touched, space-separated
  entities        TEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- Type/id touched, space-separated
  detail          TEXT NULL,                                -- why it was refused or failed
  PRIMARY KEY (id),
  KEY k_audit_recorded (tenant_id, recorded),
  KEY k_audit_account (tenant_id, account_id, id)
) ENGINE=InnoDB;

CREATE TABLE audit_seal (
  event_id   BIGINT UNSIGNED NOT NULL,
  tenant_id  SMALLINT UNSIGNED NOT NULL,
  prev_id    BIGINT UNSIGNED NOT NULL,   -- the previously sealed event (0 for the first)
  hash       CHAR(64) CHARACTER SET ascii NOT NULL,  -- hex
  sealed_at  BIGINT NOT NULL,
  PRIMARY KEY (event_id)
) ENGINE=InnoDB;

-- Records of requests other than writes reach audit_event through an append-only journal
-- file on the server's disk (server/audit/trail.hpp); each load inserts its events and the
-- journal position it reached in one transaction, so a restart resumes exactly there.
CREATE TABLE audit_loaded (
  tenant_id   SMALLINT UNSIGNED NOT NULL,
  file_no     BIGINT UNSIGNED NOT NULL,
  end_offset  BIGINT UNSIGNED NOT NULL,
  loaded_at   BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, file_no, end_offset)
) ENGINE=InnoDB;
