-- Search indexes, one table per value type (search engine, issue 3). Every row belongs to
-- the current version of one resource (resource_pk) and is replaced in the same
-- transaction as the resource. Keys are 8-byte hashes (first 8 bytes of SHA-256) of
-- (resource type, parameter code[, ...]), so a predicate is an integer lookup; text
-- columns are kept where a range or prefix is needed (string, uri) or for a hash check.
-- Every table is clustered on its primary key (resource_pk, ...): replacing a resource's
-- rows and the per-resource probes of :missing, _sort and _include use it, and no hidden
-- row id is kept. Secondary keys are few on purpose: every key costs each write.

-- The token rows of 0001 (identifier only) are rebuilt by the reindex that runs when a
-- server first starts with the search registry (server/ops/reindex).
DELETE FROM idx_token;
ALTER TABLE idx_token
  DROP KEY k_token_resource,
  ADD PRIMARY KEY (resource_pk, hash_sys_value);

-- Links are unique per (source, target) (server/interactions/support: local_links): cluster
-- on that instead of a hidden row id and a second key.
ALTER TABLE resource_link
  DROP KEY k_link_src,
  ADD PRIMARY KEY (src_pk, target_type, target_id);

-- folded: NFKC + case fold + accents of Latin/Greek/Cyrillic removed (server/search/normalize),
-- at most 255 characters, compared bytewise; hash_exact: (type, param, value as written),
-- checked after the folded key found the candidates (:exact).
CREATE TABLE idx_string (
  resource_pk  BIGINT UNSIGNED NOT NULL,
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  param_hash   BIGINT NOT NULL,
  hash_exact   BIGINT NOT NULL,
  folded       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (resource_pk, param_hash, hash_exact),
  KEY k_string_folded (tenant_id, param_hash, folded, resource_pk)
) ENGINE=InnoDB;

-- [lo, hi) in milliseconds since the epoch; open period ends are +/- 2^60.
CREATE TABLE idx_date (
  resource_pk  BIGINT UNSIGNED NOT NULL,
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  param_hash   BIGINT NOT NULL,
  lo           BIGINT NOT NULL,
  hi           BIGINT NOT NULL,
  PRIMARY KEY (resource_pk, param_hash, lo, hi),
  KEY k_date_lo (tenant_id, param_hash, lo, hi, resource_pk),
  KEY k_date_hi (tenant_id, param_hash, hi, lo, resource_pk)
) ENGINE=InnoDB;

CREATE TABLE idx_number (
  resource_pk  BIGINT UNSIGNED NOT NULL,
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  param_hash   BIGINT NOT NULL,
  val          DOUBLE NOT NULL,
  PRIMARY KEY (resource_pk, param_hash, val),
  KEY k_number_val (tenant_id, param_hash, val, resource_pk)
) ENGINE=InnoDB;

-- hash_sys_code: (type, param, system, code); hash_code: (type, param, code).
CREATE TABLE idx_quantity (
  resource_pk   BIGINT UNSIGNED NOT NULL,
  tenant_id     SMALLINT UNSIGNED NOT NULL,
  param_hash    BIGINT NOT NULL,
  hash_sys_code BIGINT NOT NULL,
  hash_code     BIGINT NOT NULL,
  val           DOUBLE NOT NULL,
  PRIMARY KEY (resource_pk, hash_sys_code, val),
  KEY k_quantity_val (tenant_id, param_hash, val, resource_pk),
  KEY k_quantity_sys_code (tenant_id, hash_sys_code, val, resource_pk),
  KEY k_quantity_code (tenant_id, hash_code, val, resource_pk)
) ENGINE=InnoDB;

CREATE TABLE idx_uri (
  resource_pk  BIGINT UNSIGNED NOT NULL,
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  param_hash   BIGINT NOT NULL,
  hash_value   BIGINT NOT NULL,
  val          VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (resource_pk, hash_value),
  KEY k_uri_value (tenant_id, hash_value, resource_pk),
  KEY k_uri_prefix (tenant_id, param_hash, val(190), resource_pk)
) ENGINE=InnoDB;

-- A reference to a resource here (target_type, target_id) or elsewhere (url; then
-- target_type is '' and target_id '~' and the hex of hash64(url), so that one key serves
-- both); hash_ref: (type, param, target_type, target_id, url).
CREATE TABLE idx_reference (
  resource_pk  BIGINT UNSIGNED NOT NULL,
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  param_hash   BIGINT NOT NULL,
  hash_ref     BIGINT NOT NULL,
  target_type  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  url          VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  PRIMARY KEY (resource_pk, hash_ref),
  KEY k_ref_target (tenant_id, param_hash, target_id, target_type, resource_pk)
) ENGINE=InnoDB;

-- Two-part composites (hash_row: every column of the row): the first part a token (hash1_sv: type, param, system, code;
-- hash1_v: type, param, code); the second a token, quantity or reference (hash2_sv,
-- hash2_v), a string (text2: folded, starts-with like a string parameter), a number or
-- quantity value (num), or a date (lo, hi).
CREATE TABLE idx_composite (
  resource_pk  BIGINT UNSIGNED NOT NULL,
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  param_hash   BIGINT NOT NULL,
  hash_row     BIGINT NOT NULL,
  hash1_sv     BIGINT NOT NULL,
  hash1_v      BIGINT NOT NULL,
  hash2_sv     BIGINT NULL,
  hash2_v      BIGINT NULL,
  num          DOUBLE NULL,
  lo           BIGINT NULL,
  hi           BIGINT NULL,
  text2        VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  PRIMARY KEY (resource_pk, hash_row),
  KEY k_composite_1sv (tenant_id, hash1_sv, resource_pk),
  KEY k_composite_1v (tenant_id, hash1_v, resource_pk)
) ENGINE=InnoDB;


-- The fingerprint of the search registry the index was built with; a server that starts
-- with a different registry reindexes (server/ops/reindex).
CREATE TABLE search_state (
  tenant_id            SMALLINT UNSIGNED NOT NULL,
  registry_fingerprint CHAR(64) CHARACTER SET ascii NOT NULL,
  indexed_at           DATETIME(6) NOT NULL,
  PRIMARY KEY (tenant_id)
) ENGINE=InnoDB;
