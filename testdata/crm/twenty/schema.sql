-- Twenty CRM: the tables the leadtail recipe touches (PostgreSQL). Twenty
-- keeps each workspace's records in its own schema, named
--   workspace_<workspace id in base 36>
-- (twentyhq/twenty packages/twenty-server/src/engine/workspace-datasource/utils/get-workspace-schema-name.util.ts).
-- Objects and columns come from the standard objects
--   twentyhq/twenty packages/twenty-server/src/modules/opportunity/standard-objects/opportunity.workspace-entity.ts
--   twentyhq/twenty packages/twenty-server/src/modules/person/standard-objects/person.workspace-entity.ts
--   twentyhq/twenty packages/twenty-server/src/engine/twenty-orm/base.workspace-entity.ts (id, createdAt, updatedAt, deletedAt)
-- with Twenty's naming and type rules:
--   composite fields are flattened to <field><Property> columns
--     (packages/twenty-server/src/engine/metadata-modules/field-metadata/utils/compute-column-name.util.ts;
--      FULL_NAME firstName/lastName, EMAILS primaryEmail/additionalEmails,
--      PHONES primaryPhoneNumber/primaryPhoneCountryCode/primaryPhoneCallingCode/additionalPhones,
--      ACTOR source/workspaceMemberId/name/context, CURRENCY amountMicros/currencyCode:
--      packages/twenty-server/src/engine/metadata-modules/field-metadata/composite-types/*.composite-type.ts);
--   SELECT fields are enums named <table>_<column>_enum (compute-postgres-enum-name.util.ts);
--   TEXT -> text, DATE_TIME -> timestamptz, POSITION/NUMBER -> float, RAW_JSON -> jsonb, UUID -> uuid
--   (workspace-migration-runner/utils/field-metadata-type-to-column-type.util.ts).
-- Columns the recipe does not read (links, search vectors, avatar, ...) are
-- left out. Twenty's id default is public.uuid_generate_v4(); this file uses
-- the built-in gen_random_uuid() so that it needs no extension.
--
-- "metaLeadId" is not a standard field: it is the custom field ("Meta Lead
-- ID", type Text) the recipe expects on People, filled by whatever imports
-- Lead Ads leads (Twenty names custom field columns after the field's API
-- name, without prefix). See mapping.yaml for what to do without one.

CREATE SCHEMA workspace_1wgvd1injqtife6y4rvfbu3h5;
SET search_path TO workspace_1wgvd1injqtife6y4rvfbu3h5;

CREATE TYPE "person_createdBySource_enum" AS ENUM ('EMAIL', 'CALENDAR', 'WORKFLOW', 'AGENT', 'API', 'IMPORT', 'MANUAL', 'SYSTEM', 'WEBHOOK');
CREATE TYPE "opportunity_createdBySource_enum" AS ENUM ('EMAIL', 'CALENDAR', 'WORKFLOW', 'AGENT', 'API', 'IMPORT', 'MANUAL', 'SYSTEM', 'WEBHOOK');
CREATE TYPE "opportunity_stage_enum" AS ENUM ('NEW', 'SCREENING', 'MEETING', 'PROPOSAL', 'CUSTOMER');

CREATE TABLE company (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  "updatedAt" timestamptz NOT NULL DEFAULT now(),
  "deletedAt" timestamptz,
  name        text DEFAULT '',
  position    float8 NOT NULL DEFAULT 0
);

CREATE TABLE person (
  id                               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "createdAt"                      timestamptz NOT NULL DEFAULT now(),
  "updatedAt"                      timestamptz NOT NULL DEFAULT now(),
  "deletedAt"                      timestamptz,
  "nameFirstName"                  text DEFAULT '',
  "nameLastName"                   text DEFAULT '',
  "emailsPrimaryEmail"             text DEFAULT '',
  "emailsAdditionalEmails"         jsonb,
  "jobTitle"                       text DEFAULT '',
  "phonesPrimaryPhoneNumber"       text DEFAULT '',
  "phonesPrimaryPhoneCountryCode"  text DEFAULT '',
  "phonesPrimaryPhoneCallingCode"  text DEFAULT '',
  "phonesAdditionalPhones"         jsonb,
  city                             text DEFAULT '',
  position                         float8 NOT NULL DEFAULT 0,
  "createdBySource"                "person_createdBySource_enum" NOT NULL DEFAULT 'MANUAL',
  "createdByWorkspaceMemberId"     uuid,
  "createdByName"                  text NOT NULL DEFAULT '',
  "createdByContext"               jsonb,
  "companyId"                      uuid REFERENCES company (id) ON DELETE SET NULL,
  "metaLeadId"                     text
);
CREATE UNIQUE INDEX "IDX_UNIQUE_person_emailsPrimaryEmail" ON person ("emailsPrimaryEmail") WHERE "deletedAt" IS NULL AND "emailsPrimaryEmail" <> '';

CREATE TABLE opportunity (
  id                            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "createdAt"                   timestamptz NOT NULL DEFAULT now(),
  "updatedAt"                   timestamptz NOT NULL DEFAULT now(),
  "deletedAt"                   timestamptz,
  name                          text DEFAULT '',
  "amountAmountMicros"          numeric,
  "amountCurrencyCode"          text DEFAULT '',
  "closeDate"                   timestamptz,
  stage                         "opportunity_stage_enum" NOT NULL DEFAULT 'NEW',
  position                      float8 NOT NULL DEFAULT 0,
  "createdBySource"             "opportunity_createdBySource_enum" NOT NULL DEFAULT 'MANUAL',
  "createdByWorkspaceMemberId"  uuid,
  "createdByName"               text NOT NULL DEFAULT '',
  "createdByContext"            jsonb,
  "pointOfContactId"            uuid REFERENCES person (id) ON DELETE SET NULL,
  "companyId"                   uuid REFERENCES company (id) ON DELETE SET NULL
);
CREATE INDEX "IDX_opportunity_stage" ON opportunity (stage);

-- Sample data.
INSERT INTO company (id, "createdAt", "updatedAt", name, position) VALUES
  ('5a0d3c6e-2f34-4c7b-9d0a-1c2b3a4d5e60', '2026-10-02 09:00:00+00', '2026-10-02 09:00:00+00', 'Nordlicht Solar GmbH', 1);

INSERT INTO person (id, "createdAt", "updatedAt", "nameFirstName", "nameLastName", "emailsPrimaryEmail", "emailsAdditionalEmails",
                    "jobTitle", "phonesPrimaryPhoneNumber", "phonesPrimaryPhoneCountryCode", "phonesPrimaryPhoneCallingCode",
                    city, position, "createdBySource", "createdByName", "companyId", "metaLeadId") VALUES
  ('0b8f1f7e-6d1c-4a55-8c3e-2a9f4b7d1e01', '2026-11-18 07:41:12.302+00', '2026-11-18 07:41:12.302+00', 'Lena', 'Fischer',
   'lena.fischer@example.de', '["l.fischer@nordlicht.example"]', 'Head of Facilities', '1701234567', 'DE', '+49',
   'Berlin', 1, 'API', 'Lead Ads import', '5a0d3c6e-2f34-4c7b-9d0a-1c2b3a4d5e60', '1203847561029501'),
  ('0b8f1f7e-6d1c-4a55-8c3e-2a9f4b7d1e02', '2026-11-19 12:05:40.010+00', '2026-11-19 12:05:40.010+00', 'Omar', 'Haddad',
   'omar.haddad@example.com', NULL, '', '6471234567', 'CA', '+1',
   'Toronto', 2, 'MANUAL', 'Sam Rivera', NULL, NULL);

INSERT INTO opportunity (id, "createdAt", "updatedAt", name, "amountAmountMicros", "amountCurrencyCode", stage, position,
                         "createdBySource", "createdByName", "pointOfContactId", "companyId") VALUES
  ('7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e01', '2026-11-18 07:41:13.120+00', '2026-11-18 07:41:13.120+00', 'Nordlicht: rooftop PV',
   85000000000, 'EUR', 'SCREENING', 1, 'API', 'Lead Ads import', '0b8f1f7e-6d1c-4a55-8c3e-2a9f4b7d1e01', '5a0d3c6e-2f34-4c7b-9d0a-1c2b3a4d5e60'),
  ('7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e02', '2026-11-19 12:06:02.500+00', '2026-11-19 12:06:02.500+00', 'Haddad: battery storage',
   12000000000, 'CAD', 'NEW', 2, 'MANUAL', 'Sam Rivera', '0b8f1f7e-6d1c-4a55-8c3e-2a9f4b7d1e02', NULL);

RESET search_path;
