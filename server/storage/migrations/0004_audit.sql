-- Audit trail (issue 5, R-30, R-31, R-34): one row per request, written before the
-- response is sent (a write's row in the write's own transaction; reads' rows in batches
-- that share one commit). The server's DB user may only SELECT and INSERT these tables
-- (grants are set per table by the embedded provisioning; see server/audit/README.md for
-- an external database); retention purges run as a separate maintenance user.
--
-- audit_event holds what was done; audit_seal the SHA-256 hash chain over it, added by the
-- server's sealer once every lower id has committed or was rolled back, block by block:
--   digest(e) = SHA-256(canonical bytes of event e)
--   hash(block) = SHA-256(hash(previous block) || the block's ids and digests)
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
  patients        MEDIUMTEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- Patient ids touched, space-separated
  entities        MEDIUMTEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- Type/id touched, space-separated
  detail          TEXT NULL,                                -- why it was refused or failed
  PRIMARY KEY (id),
  -- One secondary index only: every index is paid for on every request. Searches by agent,
  -- patient or terminal narrow by time first (reports are monthly).
  KEY k_audit_recorded (tenant_id, recorded)
) ENGINE=InnoDB;

-- One seal per block of events (the events the sealer took in one step, in id order):
-- digests lists, for each event of the block, its id and SHA-256(canonical bytes), so that
-- verification names the exact event that changed; hash chains the blocks.
CREATE TABLE audit_seal (
  last_id    BIGINT UNSIGNED NOT NULL,   -- the block's last event
  tenant_id  SMALLINT UNSIGNED NOT NULL,
  first_id   BIGINT UNSIGNED NOT NULL,   -- its first event
  prev_id    BIGINT UNSIGNED NOT NULL,   -- the previous block's last event (0 for the first)
  events     INT UNSIGNED NOT NULL,
  digests    LONGTEXT CHARACTER SET ascii NOT NULL,  -- per event: 16 hex digits of id + 64 of digest
  hash       CHAR(64) CHARACTER SET ascii NOT NULL,  -- SHA-256(previous block's hash || digests), hex
  sealed_at  BIGINT NOT NULL,
  PRIMARY KEY (last_id)
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
