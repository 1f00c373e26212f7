-- Access control (issue 5, R-03, R-20 … R-22). Every version of a resource carries its
-- information category (server/access/category: the meta.security label the server sets
-- on write, as a small number) and the residents (Patients) whose data it is, so that a
-- search, an include, a history listing or a count can leave out what a caller may not see
-- in SQL, before paging and counting. Category 0 (unlabelled) is granted to nobody outside
-- the city: rows written before this migration get their label at the reindex that the
-- first start with it runs (server/ops/reindex).
ALTER TABLE resource ADD COLUMN category TINYINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE resource_history ADD COLUMN category TINYINT UNSIGNED NOT NULL DEFAULT 0;

-- The Patients a version belongs to (its Patient-compartment references, or itself for a
-- Patient). A delete marker keeps the rows of the version it deleted.
CREATE TABLE resource_subject (
  resource_pk  BIGINT UNSIGNED NOT NULL,
  version      INT UNSIGNED NOT NULL,
  tenant_id    SMALLINT UNSIGNED NOT NULL,
  patient_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  PRIMARY KEY (resource_pk, version, patient_id),
  KEY k_subject_patient (tenant_id, patient_id)
) ENGINE=InnoDB;

-- Opt-outs (R-21), derived from the current version of each Consent under the city's
-- opt-out policy in the Consent's own transaction: the resident's data is not provided to
-- institution_id ('' = every institution) within [start_ms, end_ms).
CREATE TABLE access_optout (
  tenant_id       SMALLINT UNSIGNED NOT NULL,
  consent_pk      BIGINT UNSIGNED NOT NULL,
  patient_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  institution_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  start_ms        BIGINT NOT NULL,
  end_ms          BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, consent_pk, patient_id, institution_id),
  KEY k_optout_patient (tenant_id, patient_id)
) ENGINE=InnoDB;

-- Rows written before categories existed: labelled by the next reindex.
UPDATE search_state SET registry_fingerprint='';
