-- Identity (issue 4, R-10 … R-19): institutions, accounts, admin-right grants, proxy
-- relations, clients (terminals), tokens, authorization codes and used client-assertion ids.
-- Secrets are never stored: passwords as Argon2id PHC strings, client secrets and tokens as
-- SHA-256 hashes. Every table carries tenant_id like the resource tables.

-- Institutions (利用機関): application -> owner approval -> active -> deregistered (R-11).
-- categories: the information categories × read/write requested/granted (JSON, R-20).
CREATE TABLE auth_institution (
  tenant_id     SMALLINT UNSIGNED NOT NULL,
  id            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name          VARCHAR(256) NOT NULL,
  state         VARCHAR(16) CHARACTER SET ascii NOT NULL,
  details       LONGTEXT NOT NULL,
  applied_at    DATETIME(6) NOT NULL,
  decided_at    DATETIME(6) NULL,
  decided_by    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ended_at      DATETIME(6) NULL,
  ended_by      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (tenant_id, id)
) ENGINE=InnoDB;

-- Accounts: one per person (R-10). state: requested (an org-manager's request or a
-- citizen's application, not yet issued), active, rejected, deregistered.
-- password_initial: the password was issued or reset by the city and must be changed
-- before anything else (R-13, R-14). Login throttling is kept in memory (server/auth).
CREATE TABLE auth_account (
  tenant_id         SMALLINT UNSIGNED NOT NULL,
  id                VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name              VARCHAR(256) NOT NULL,
  role              VARCHAR(16) CHARACTER SET ascii NOT NULL,
  institution_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  fhir_user         VARCHAR(160) CHARACTER SET ascii COLLATE ascii_bin NULL,
  state             VARCHAR(16) CHARACTER SET ascii NOT NULL,
  password_hash     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  password_initial  TINYINT(1) NOT NULL DEFAULT 1,
  password_set_at   DATETIME(6) NULL,
  totp_secret       VARBINARY(64) NULL,
  totp_last_step    BIGINT NOT NULL DEFAULT 0,
  admin_right       TINYINT(1) NOT NULL DEFAULT 0,
  details           LONGTEXT NOT NULL,
  created_at        DATETIME(6) NOT NULL,
  created_by        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  issued_at         DATETIME(6) NULL,
  issued_by         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ended_at          DATETIME(6) NULL,
  ended_by          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (tenant_id, id),
  KEY k_account_institution (tenant_id, institution_id)
) ENGINE=InnoDB;

-- Admin rights (R-16): requested for an account, approved by a sysadmin; at most two
-- active at a time (counted while holding the 'admin-rights' row of auth_lock).
CREATE TABLE auth_admin_grant (
  pk            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id     SMALLINT UNSIGNED NOT NULL,
  account_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state         VARCHAR(16) CHARACTER SET ascii NOT NULL,
  reason        VARCHAR(1000) NOT NULL,
  requested_at  DATETIME(6) NOT NULL,
  requested_by  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  decided_at    DATETIME(6) NULL,
  decided_by    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (pk),
  KEY k_grant_account (tenant_id, account_id)
) ENGINE=InnoDB;

-- Proxy relations (代諾者, R-22): a citizen account acting for a resident (Patient) within
-- a period. ended_at set = no longer active.
CREATE TABLE auth_proxy (
  tenant_id     SMALLINT UNSIGNED NOT NULL,
  account_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  patient_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  relationship  VARCHAR(64) NOT NULL,
  started_at    DATETIME(6) NOT NULL,
  ended_at      DATETIME(6) NULL,
  PRIMARY KEY (tenant_id, account_id, patient_id)
) ENGINE=InnoDB;

-- Clients are terminals (R-18): registered by the secretariat for an approved institution
-- (or, for residents' apps, for no institution). kind: public (PKCE only), confidential
-- (client_secret_basic), backend (private_key_jwt with the JWKS given).
CREATE TABLE auth_client (
  tenant_id      SMALLINT UNSIGNED NOT NULL,
  client_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  terminal_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name           VARCHAR(256) NOT NULL,
  kind           VARCHAR(16) CHARACTER SET ascii NOT NULL,
  institution_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  state          VARCHAR(16) CHARACTER SET ascii NOT NULL,
  secret_hash    BINARY(32) NULL,
  details        LONGTEXT NOT NULL,
  created_at     DATETIME(6) NOT NULL,
  created_by     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ended_at       DATETIME(6) NULL,
  ended_by       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (tenant_id, client_id),
  UNIQUE KEY uk_client_terminal (tenant_id, terminal_id)
) ENGINE=InnoDB;

-- Tokens: kind session (login to the server's own pages and JSON API), access, refresh.
-- Only SHA-256(token) is stored. A refresh token's family is the refresh token it rotated
-- from (the first one's hash); a reused, already rotated refresh token revokes its family.
-- last_used drives the 15-minute idle timeout (R-17); it is written back lazily.
CREATE TABLE auth_token (
  token_hash     BINARY(32) NOT NULL,
  tenant_id      SMALLINT UNSIGNED NOT NULL,
  kind           VARCHAR(8) CHARACTER SET ascii NOT NULL,
  account_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  client_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  scope          VARCHAR(4000) NOT NULL,
  patient_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  family         BINARY(32) NULL,
  created_at     DATETIME(6) NOT NULL,
  expires_at     DATETIME(6) NOT NULL,
  last_used      DATETIME(6) NOT NULL,
  revoked        TINYINT(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (token_hash),
  KEY k_token_account (tenant_id, account_id),
  KEY k_token_family (family),
  KEY k_token_expiry (expires_at)
) ENGINE=InnoDB;

-- Authorization codes (one use, 60 s), with the PKCE S256 challenge and the context chosen.
CREATE TABLE auth_code (
  code_hash      BINARY(32) NOT NULL,
  tenant_id      SMALLINT UNSIGNED NOT NULL,
  client_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  account_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  redirect_uri   VARCHAR(2000) NOT NULL,
  scope          VARCHAR(4000) NOT NULL,
  challenge      VARCHAR(128) CHARACTER SET ascii NOT NULL,
  patient_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  nonce          VARCHAR(512) NULL,
  session_hash   BINARY(32) NOT NULL,
  created_at     DATETIME(6) NOT NULL,
  expires_at     DATETIME(6) NOT NULL,
  used           TINYINT(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (code_hash)
) ENGINE=InnoDB;

-- Client assertion ids already seen (private_key_jwt): a replayed jti is refused until the
-- assertion it came with has expired.
CREATE TABLE auth_jti (
  tenant_id   SMALLINT UNSIGNED NOT NULL,
  client_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  jti_hash    BINARY(32) NOT NULL,
  expires_at  DATETIME(6) NOT NULL,
  PRIMARY KEY (tenant_id, client_id, jti_hash),
  KEY k_jti_expiry (expires_at)
) ENGINE=InnoDB;

-- Named locks: a transaction that must not run beside another of its kind updates its row
-- first (a row lock here; a write-set conflict on Galera, where the loser retries).
CREATE TABLE auth_lock (
  tenant_id  SMALLINT UNSIGNED NOT NULL,
  name       VARCHAR(32) CHARACTER SET ascii NOT NULL,
  n          BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, name)
) ENGINE=InnoDB;

-- The server's signing key for id_tokens (RS256), created at first start.
CREATE TABLE auth_signing_key (
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  kid          VARCHAR(64) CHARACTER SET ascii NOT NULL,
  private_pem  TEXT CHARACTER SET ascii NOT NULL,
  created_at   DATETIME(6) NOT NULL,
  PRIMARY KEY (tenant_id, kid)
) ENGINE=InnoDB;
