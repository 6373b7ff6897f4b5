-- Odoo CRM: the tables the leadtail recipe touches, as Odoo's ORM creates
-- them (PostgreSQL). Columns and types follow the field definitions in
--   odoo/odoo addons/crm/models/crm_lead.py      (crm.lead  -> crm_lead)
--   odoo/odoo addons/crm/models/crm_stage.py     (crm.stage -> crm_stage)
--   odoo/odoo addons/crm/data/crm_stage_data.xml (the four default stages)
--   odoo/odoo odoo/addons/base/models/res_partner.py, res_country.py
-- Odoo maps Char -> varchar, Many2one -> int4, Boolean -> bool,
-- Float -> float8, Monetary -> numeric, Datetime -> timestamp (UTC, no
-- zone), Date -> date, Html -> text, and a translated Char (translate=True,
-- e.g. crm_stage.name) -> jsonb {"en_US": "..."}. Every table also has
-- create_uid/create_date/write_uid/write_date. Only the columns the recipe
-- and a realistic UI write need are kept; a real crm_lead has ~80 more.
--
-- facebook_lead_id is not part of Odoo: Lead Ads connector modules
-- (e.g. the community crm_facebook_leads modules) add it to crm.lead and fill
-- it with Meta's lead id. Without such a module the column does not exist;
-- see mapping.yaml for what to do then.

CREATE TABLE res_country (
  id          serial PRIMARY KEY,
  name        jsonb NOT NULL,
  code        varchar(2),
  phone_code  int4,
  create_uid  int4,
  create_date timestamp,
  write_uid   int4,
  write_date  timestamp
);

CREATE TABLE res_partner (
  id          serial PRIMARY KEY,
  name        varchar,
  company_id  int4,
  parent_id   int4 REFERENCES res_partner (id) ON DELETE SET NULL,
  type        varchar,
  is_company  bool,
  active      bool,
  email       varchar,
  phone       varchar,
  street      varchar,
  zip         varchar,
  city        varchar,
  country_id  int4 REFERENCES res_country (id) ON DELETE RESTRICT,
  create_uid  int4,
  create_date timestamp,
  write_uid   int4,
  write_date  timestamp
);

CREATE TABLE crm_stage (
  id           serial PRIMARY KEY,
  name         jsonb NOT NULL,
  sequence     int4,
  is_won       bool,
  requirements text,
  team_id      int4,
  fold         bool,
  color        int4,
  create_uid   int4,
  create_date  timestamp,
  write_uid    int4,
  write_date   timestamp
);

CREATE TABLE crm_lead (
  id                      serial PRIMARY KEY,
  name                    varchar NOT NULL,
  user_id                 int4,
  team_id                 int4,
  company_id              int4,
  referred                varchar,
  description             text,
  active                  bool,
  type                    varchar NOT NULL,
  priority                varchar,
  stage_id                int4 REFERENCES crm_stage (id) ON DELETE RESTRICT,
  color                   int4,
  expected_revenue        numeric,
  prorated_revenue        numeric,
  date_closed             timestamp,
  date_open               timestamp,
  day_open                float8,
  day_close               float8,
  date_last_stage_update  timestamp,
  date_conversion         timestamp,
  date_deadline           date,
  partner_id              int4 REFERENCES res_partner (id) ON DELETE SET NULL,
  contact_name            varchar,
  partner_name            varchar,
  function                varchar,
  email_from              varchar,
  email_normalized        varchar,
  phone                   varchar,
  phone_sanitized         varchar,
  website                 varchar,
  street                  varchar,
  street2                 varchar,
  zip                     varchar,
  city                    varchar,
  state_id                int4,
  country_id              int4 REFERENCES res_country (id) ON DELETE SET NULL,
  probability             float8,
  automated_probability   float8,
  lost_reason_id          int4,
  campaign_id             int4,
  medium_id               int4,
  source_id               int4,
  facebook_lead_id        varchar,
  create_uid              int4,
  create_date             timestamp,
  write_uid               int4,
  write_date              timestamp,
  CONSTRAINT crm_lead_check_probability CHECK (probability >= 0 AND probability <= 100)
);
CREATE INDEX crm_lead__stage_id_index ON crm_lead (stage_id);

-- Sample data. Country and stage ids are what a fresh database gets; check
-- yours with: SELECT id, name->>'en_US', is_won FROM crm_stage ORDER BY sequence;
INSERT INTO res_country (id, name, code, phone_code, create_date, write_date) VALUES
  (21,  '{"en_US": "Belgium"}',       'BE', 32, '2026-01-05 08:00:00', '2026-01-05 08:00:00'),
  (75,  '{"en_US": "France"}',        'FR', 33, '2026-01-05 08:00:00', '2026-01-05 08:00:00'),
  (233, '{"en_US": "United States"}', 'US', 1,  '2026-01-05 08:00:00', '2026-01-05 08:00:00');

-- crm_stage_data.xml: stage_lead1..4, in this order on a fresh database.
INSERT INTO crm_stage (id, name, sequence, is_won, fold, color, create_uid, create_date, write_uid, write_date) VALUES
  (1, '{"en_US": "New"}',         1,  false, false, 11, 1, '2026-01-05 08:00:00', 1, '2026-01-05 08:00:00'),
  (2, '{"en_US": "Qualified"}',   2,  false, false, 5,  1, '2026-01-05 08:00:00', 1, '2026-01-05 08:00:00'),
  (3, '{"en_US": "Proposition"}', 3,  false, false, 8,  1, '2026-01-05 08:00:00', 1, '2026-01-05 08:00:00'),
  (4, '{"en_US": "Won"}',         70, true,  false, 10, 1, '2026-01-05 08:00:00', 1, '2026-01-05 08:00:00');
SELECT setval('crm_stage_id_seq', 4);

INSERT INTO res_partner (id, name, type, is_company, active, email, phone, street, zip, city, country_id, create_uid, create_date, write_uid, write_date) VALUES
  (14, 'Jane Doe',       'contact', false, true, 'jane.doe@example.com',   '+32 470 12 34 56', 'Rue de la Loi 16', '1000', 'Brussels', 21, 2, '2026-11-02 09:12:44', 2, '2026-11-02 09:12:44'),
  (15, 'Marc Dubois',    'contact', false, true, 'marc.dubois@example.fr', '+33 6 12 34 56 78', '5 Rue Sainte-Catherine', '33000', 'Bordeaux', 75, 2, '2026-11-03 14:01:09', 2, '2026-11-03 14:01:09');
SELECT setval('res_partner_id_seq', 15);

INSERT INTO crm_lead (id, name, user_id, team_id, company_id, active, type, priority, stage_id, expected_revenue,
                      date_open, date_last_stage_update, date_conversion, partner_id, contact_name, partner_name,
                      email_from, email_normalized, phone, phone_sanitized, zip, city, country_id,
                      probability, automated_probability, facebook_lead_id,
                      create_uid, create_date, write_uid, write_date) VALUES
  (41, 'Lead Ads: Solar panels quote', 2, 1, 1, true, 'lead', '1', 1, 0,
       '2026-11-02 09:12:44', '2026-11-02 09:12:44', NULL, 14, 'Jane Doe', NULL,
       'jane.doe@example.com', 'jane.doe@example.com', '+32 470 12 34 56', '+32470123456', '1000', 'Brussels', 21,
       10.0, 10.0, '1203847561029384',
       2, '2026-11-02 09:12:44', 2, '2026-11-02 09:12:44'),
  (42, 'Dubois: heat pump', 2, 1, 1, true, 'opportunity', '2', 2, 12000,
       '2026-11-03 14:01:09', '2026-11-05 10:30:00', '2026-11-05 10:30:00', 15, 'Marc Dubois', 'Dubois SARL',
       'marc.dubois@example.fr', 'marc.dubois@example.fr', '+33 6 12 34 56 78', '+33612345678', '33000', 'Bordeaux', 75,
       35.5, 35.5, '1203847561029385',
       2, '2026-11-03 14:01:09', 2, '2026-11-05 10:30:00'),
  (43, 'Website: office lighting', 6, 1, 1, true, 'opportunity', '1', 4, 4800,
       '2026-10-20 11:00:00', '2026-11-10 16:45:00', '2026-10-22 08:00:00', NULL, 'Lena Fischer', 'Fischer GmbH',
       'lena@fischer-gmbh.example', 'lena@fischer-gmbh.example', '+49 30 1234567', '+49301234567', '10115', 'Berlin', NULL,
       100.0, 100.0, NULL,
       6, '2026-10-20 11:00:00', 6, '2026-11-10 16:45:00'),
  (44, 'Lead Ads: Solar panels quote', 2, 1, 1, false, 'lead', '0', 1, 0,
       '2026-11-04 18:20:00', '2026-11-04 18:20:00', NULL, NULL, 'Tom Baker', NULL,
       'tom.baker@example.com', 'tom.baker@example.com', NULL, NULL, NULL, NULL, 233,
       0.0, 0.0, '1203847561029386',
       2, '2026-11-04 18:20:00', 2, '2026-11-06 09:00:00');
SELECT setval('crm_lead_id_seq', 44);
