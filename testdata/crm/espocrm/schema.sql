-- EspoCRM: the tables the leadtail recipe touches (MySQL / MariaDB), as
-- EspoCRM's ORM builds them from its entity definitions (camelCase fields
-- become snake_case columns; ids are varchar(17); bool -> tinyint(1);
-- enum/varchar -> varchar(255 unless maxLength); text -> mediumtext;
-- datetime -> datetime in UTC; currency -> double + <field>_currency):
--   espocrm/espocrm application/Espo/Modules/Crm/Resources/metadata/entityDefs/Lead.json
--       status enum New, Assigned, In Process, Converted, Recycled, Dead (default New, audited)
--   espocrm/espocrm application/Espo/Resources/metadata/entityDefs/EmailAddress.json   email_address
--   espocrm/espocrm application/Espo/Resources/metadata/entityDefs/PhoneNumber.json    phone_number
--   espocrm/espocrm application/Espo/Core/Utils/Database/Orm/FieldConverters/Email.php
--       and Phone.php: the many-to-many tables entity_email_address / entity_phone_number
--       (entityId, emailAddressId / phoneNumberId, entityType, primary)
--   espocrm/espocrm application/Espo/Resources/metadata/entityDefs/Note.json          note (the stream)
--   espocrm/espocrm application/Espo/Tools/FieldManager/FieldManager.php
--       custom fields of built-in entities get the prefix "c": a field created
--       as "fbLeadId" is cFbLeadId, column c_fb_lead_id.
-- c_fb_lead_id is the custom field the recipe expects (Administration >
-- Entity Manager > Lead > Fields > Add Field, Varchar "fbLeadId"), filled by
-- the Lead Ads import. Columns the recipe does not read are left out of note.
--
-- mysqltest runs one statement per Exec: statements end with ";" at a line end.

CREATE TABLE lead (
  id varchar(17) NOT NULL,
  deleted tinyint(1) DEFAULT '0',
  salutation_name varchar(255) DEFAULT NULL,
  first_name varchar(100) DEFAULT NULL,
  last_name varchar(100) DEFAULT NULL,
  title varchar(100) DEFAULT NULL,
  status varchar(255) DEFAULT 'New',
  source varchar(255) DEFAULT NULL,
  industry varchar(255) DEFAULT NULL,
  opportunity_amount double DEFAULT NULL,
  website varchar(255) DEFAULT NULL,
  address_street varchar(255) DEFAULT NULL,
  address_city varchar(255) DEFAULT NULL,
  address_state varchar(255) DEFAULT NULL,
  address_country varchar(255) DEFAULT NULL,
  address_postal_code varchar(255) DEFAULT NULL,
  do_not_call tinyint(1) NOT NULL DEFAULT '0',
  description mediumtext,
  converted_at datetime DEFAULT NULL,
  created_at datetime DEFAULT NULL,
  modified_at datetime DEFAULT NULL,
  account_name varchar(255) DEFAULT NULL,
  opportunity_amount_currency varchar(3) DEFAULT NULL,
  created_by_id varchar(17) DEFAULT NULL,
  modified_by_id varchar(17) DEFAULT NULL,
  assigned_user_id varchar(17) DEFAULT NULL,
  campaign_id varchar(17) DEFAULT NULL,
  created_account_id varchar(17) DEFAULT NULL,
  created_contact_id varchar(17) DEFAULT NULL,
  created_opportunity_id varchar(17) DEFAULT NULL,
  c_fb_lead_id varchar(255) DEFAULT NULL,
  PRIMARY KEY (id),
  KEY IDX_FIRST_NAME (first_name, deleted),
  KEY IDX_NAME (first_name, last_name),
  KEY IDX_STATUS (status, deleted),
  KEY IDX_CREATED_AT (created_at, deleted),
  KEY IDX_CREATED_AT_STATUS (created_at, status),
  UNIQUE KEY UNIQ_CREATED_AT_ID (created_at, id),
  KEY IDX_ASSIGNED_USER (assigned_user_id, deleted),
  KEY IDX_ASSIGNED_USER_STATUS (assigned_user_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE email_address (
  id varchar(17) NOT NULL,
  name varchar(255) DEFAULT NULL,
  deleted tinyint(1) DEFAULT '0',
  lower varchar(255) DEFAULT NULL,
  invalid tinyint(1) NOT NULL DEFAULT '0',
  opt_out tinyint(1) NOT NULL DEFAULT '0',
  PRIMARY KEY (id),
  KEY IDX_LOWER (lower)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE entity_email_address (
  id bigint NOT NULL AUTO_INCREMENT,
  entity_id varchar(17) DEFAULT NULL,
  email_address_id varchar(17) DEFAULT NULL,
  entity_type varchar(100) DEFAULT NULL,
  `primary` tinyint(1) DEFAULT '0',
  deleted tinyint(1) DEFAULT '0',
  PRIMARY KEY (id),
  UNIQUE KEY UNIQ_ENTITY_ID_EMAIL_ADDRESS_ID_ENTITY_TYPE (entity_id, email_address_id, entity_type),
  KEY IDX_ENTITY_ID (entity_id),
  KEY IDX_EMAIL_ADDRESS_ID (email_address_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE phone_number (
  id varchar(17) NOT NULL,
  name varchar(36) DEFAULT NULL,
  deleted tinyint(1) DEFAULT '0',
  type varchar(255) DEFAULT NULL,
  `numeric` varchar(36) DEFAULT NULL,
  invalid tinyint(1) NOT NULL DEFAULT '0',
  opt_out tinyint(1) NOT NULL DEFAULT '0',
  PRIMARY KEY (id),
  KEY IDX_NAME (name),
  KEY IDX_NUMERIC (`numeric`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE entity_phone_number (
  id bigint NOT NULL AUTO_INCREMENT,
  entity_id varchar(17) DEFAULT NULL,
  phone_number_id varchar(17) DEFAULT NULL,
  entity_type varchar(100) DEFAULT NULL,
  `primary` tinyint(1) DEFAULT '0',
  deleted tinyint(1) DEFAULT '0',
  PRIMARY KEY (id),
  UNIQUE KEY UNIQ_ENTITY_ID_PHONE_NUMBER_ID_ENTITY_TYPE (entity_id, phone_number_id, entity_type),
  KEY IDX_ENTITY_ID (entity_id),
  KEY IDX_PHONE_NUMBER_ID (phone_number_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE note (
  id varchar(17) NOT NULL,
  deleted tinyint(1) DEFAULT '0',
  post mediumtext,
  data mediumtext,
  type varchar(24) DEFAULT 'Post',
  target_type varchar(7) DEFAULT NULL,
  number bigint NOT NULL AUTO_INCREMENT,
  is_global tinyint(1) NOT NULL DEFAULT '0',
  is_internal tinyint(1) NOT NULL DEFAULT '0',
  is_pinned tinyint(1) NOT NULL DEFAULT '0',
  created_at datetime DEFAULT NULL,
  modified_at datetime DEFAULT NULL,
  parent_id varchar(17) DEFAULT NULL,
  parent_type varchar(100) DEFAULT NULL,
  related_id varchar(17) DEFAULT NULL,
  related_type varchar(100) DEFAULT NULL,
  created_by_id varchar(17) DEFAULT NULL,
  modified_by_id varchar(17) DEFAULT NULL,
  super_parent_id varchar(17) DEFAULT NULL,
  super_parent_type varchar(100) DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY UNIQ_NUMBER (number),
  KEY IDX_CREATED_AT (created_at),
  KEY IDX_TYPE (type),
  KEY IDX_PARENT (parent_id, parent_type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Sample data.
INSERT INTO lead (id, deleted, salutation_name, first_name, last_name, status, source, address_city, address_country, address_postal_code,
                  created_at, modified_at, created_by_id, modified_by_id, assigned_user_id, c_fb_lead_id) VALUES
  ('6931c0a2e4b5f1a01', 0, 'Ms.', 'Sara', 'Lindqvist', 'New', 'Campaign', 'Göteborg', 'Sweden', '411 03',
   '2026-11-18 06:12:40', '2026-11-18 06:12:40', 'system', 'system', '6931b8f00c1d2e301', '1203847561029701'),
  ('6931c0a2e4b5f1a02', 0, 'Mr.', 'Jonas', 'Berg', 'Assigned', 'Web Site', 'Oslo', 'NO', '0150',
   '2026-11-18 09:40:00', '2026-11-19 08:00:00', '6931b8f00c1d2e301', '6931b8f00c1d2e301', '6931b8f00c1d2e302', NULL);

INSERT INTO email_address (id, name, deleted, lower, invalid, opt_out) VALUES
  ('6931c0a2e4b5f1e01', 'Sara.Lindqvist@example.se', 0, 'sara.lindqvist@example.se', 0, 0),
  ('6931c0a2e4b5f1e02', 'jonas@berg-bygg.example', 0, 'jonas@berg-bygg.example', 0, 0);

INSERT INTO entity_email_address (entity_id, email_address_id, entity_type, `primary`, deleted) VALUES
  ('6931c0a2e4b5f1a01', '6931c0a2e4b5f1e01', 'Lead', 1, 0),
  ('6931c0a2e4b5f1a02', '6931c0a2e4b5f1e02', 'Lead', 1, 0);

INSERT INTO phone_number (id, name, deleted, type, `numeric`, invalid, opt_out) VALUES
  ('6931c0a2e4b5f1p01', '+46 70 123 45 67', 0, 'Mobile', '46701234567', 0, 0),
  ('6931c0a2e4b5f1p02', '+47 912 34 567', 0, 'Office', '4791234567', 0, 0);

INSERT INTO entity_phone_number (entity_id, phone_number_id, entity_type, `primary`, deleted) VALUES
  ('6931c0a2e4b5f1a01', '6931c0a2e4b5f1p01', 'Lead', 1, 0),
  ('6931c0a2e4b5f1a02', '6931c0a2e4b5f1p02', 'Lead', 1, 0);
