-- Core resource storage: one generic table for current state, one for every version.
-- Every table carries tenant_id (constant 1 for now) so that several municipalities can
-- share one deployment later without a schema rewrite.

CREATE TABLE resource (
  pk            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id     SMALLINT UNSIGNED NOT NULL,
  res_type      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  res_id        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  version       INT UNSIGNED NOT NULL,
  last_updated  DATETIME(6) NOT NULL,
  deleted       TINYINT(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (pk),
  UNIQUE KEY uk_resource_logical (tenant_id, res_type, res_id),
  KEY k_resource_updated (tenant_id, res_type, last_updated)
) ENGINE=InnoDB;

-- content is the compact JSON exactly as served (NULL for a delete marker).
-- superseded_at is when the next version replaced this one; it answers _at.
CREATE TABLE resource_history (
  resource_pk   BIGINT UNSIGNED NOT NULL,
  version       INT UNSIGNED NOT NULL,
  tenant_id     SMALLINT UNSIGNED NOT NULL,
  res_type      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  res_id        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  last_updated  DATETIME(6) NOT NULL,
  superseded_at DATETIME(6) NULL,
  method        CHAR(6) CHARACTER SET ascii NOT NULL,
  content       LONGBLOB NULL,
  PRIMARY KEY (resource_pk, version),
  KEY k_history_type_time (tenant_id, res_type, last_updated, resource_pk, version),
  KEY k_history_time (tenant_id, last_updated, resource_pk, version)
) ENGINE=InnoDB;

-- Token index. Hashes are the first 8 bytes of SHA-256 over (type, param[, system][, value]);
-- most predicates become one integer lookup. Filled for identifier now; the search
-- registry fills every token parameter later.
CREATE TABLE idx_token (
  resource_pk     BIGINT UNSIGNED NOT NULL,
  tenant_id       SMALLINT UNSIGNED NOT NULL,
  param_hash      BIGINT NOT NULL,
  hash_sys_value  BIGINT NOT NULL,
  hash_value      BIGINT NOT NULL,
  hash_sys        BIGINT NOT NULL,
  sys             VARCHAR(512) NULL,
  val             VARCHAR(512) NULL,
  KEY k_token_sys_value (tenant_id, hash_sys_value, resource_pk),
  KEY k_token_value (tenant_id, hash_value, resource_pk),
  KEY k_token_sys (tenant_id, hash_sys, resource_pk),
  KEY k_token_resource (resource_pk)
) ENGINE=InnoDB;

-- Every literal reference of the current version of a resource to another resource on
-- this server. Used for referential integrity on delete; search indexes come separately.
CREATE TABLE resource_link (
  src_pk       BIGINT UNSIGNED NOT NULL,
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  target_type  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  path         VARCHAR(255) NOT NULL,
  KEY k_link_target (tenant_id, target_type, target_id, src_pk),
  KEY k_link_src (src_pk)
) ENGINE=InnoDB;

-- Arbitrates concurrent conditional creates with the same criteria: the second insert of
-- the same key waits for the first transaction and then fails with a duplicate key.
CREATE TABLE conditional_create_key (
  tenant_id     SMALLINT UNSIGNED NOT NULL,
  res_type      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  criteria_hash BIGINT NOT NULL,
  resource_pk   BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (tenant_id, res_type, criteria_hash),
  KEY k_cck_resource (resource_pk)
) ENGINE=InnoDB;
