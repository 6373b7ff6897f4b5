-- SuiteCRM 7 / SugarCRM CE: the tables the leadtail recipe touches (MySQL /
-- MariaDB), as SuiteCRM's installer creates them from its vardefs:
--   salesagility/SuiteCRM modules/Leads/vardefs.php                        leads (status, converted, ...)
--   salesagility/SuiteCRM include/SugarObjects/templates/person/vardefs.php first_name, phone_*, primary_address_*
--   salesagility/SuiteCRM metadata/email_addressesMetaData.php             email_addresses, email_addr_bean_rel
--   salesagility/SuiteCRM metadata/audit_templateMetaData.php              leads_audit (status is audited)
--   salesagility/SuiteCRM include/language/en_us.lang.php                  lead_status_dom: New, Assigned,
--                                                                          In Process, Converted, Recycled, Dead
-- SugarCRM's MySQL types: id -> char(36), bool -> tinyint(1), enum ->
-- varchar(len), phone/url -> varchar, datetime -> datetime (UTC).
-- leads_cstm holds the custom fields (Studio adds <name>_c columns; the
-- jjwg_maps_* ones ship with SuiteCRM's Maps module). fb_lead_id_c is the
-- custom field the recipe expects: add it in Studio (Leads > Fields > Add
-- Field, TextField "fb_lead_id") and fill it from the Lead Ads import.
--
-- mysqltest runs one statement per Exec: statements end with ";" at a line end.

CREATE TABLE leads (
  id char(36) NOT NULL,
  date_entered datetime DEFAULT NULL,
  date_modified datetime DEFAULT NULL,
  modified_user_id char(36) DEFAULT NULL,
  created_by char(36) DEFAULT NULL,
  description text,
  deleted tinyint(1) DEFAULT '0',
  assigned_user_id char(36) DEFAULT NULL,
  salutation varchar(255) DEFAULT NULL,
  first_name varchar(100) DEFAULT NULL,
  last_name varchar(100) DEFAULT NULL,
  title varchar(100) DEFAULT NULL,
  photo varchar(255) DEFAULT NULL,
  department varchar(100) DEFAULT NULL,
  do_not_call tinyint(1) DEFAULT '0',
  phone_home varchar(100) DEFAULT NULL,
  phone_mobile varchar(100) DEFAULT NULL,
  phone_work varchar(100) DEFAULT NULL,
  phone_other varchar(100) DEFAULT NULL,
  phone_fax varchar(100) DEFAULT NULL,
  lawful_basis text,
  date_reviewed date DEFAULT NULL,
  lawful_basis_source varchar(100) DEFAULT NULL,
  primary_address_street varchar(150) DEFAULT NULL,
  primary_address_city varchar(100) DEFAULT NULL,
  primary_address_state varchar(100) DEFAULT NULL,
  primary_address_postalcode varchar(20) DEFAULT NULL,
  primary_address_country varchar(255) DEFAULT NULL,
  alt_address_street varchar(150) DEFAULT NULL,
  alt_address_city varchar(100) DEFAULT NULL,
  alt_address_state varchar(100) DEFAULT NULL,
  alt_address_postalcode varchar(20) DEFAULT NULL,
  alt_address_country varchar(255) DEFAULT NULL,
  assistant varchar(75) DEFAULT NULL,
  assistant_phone varchar(100) DEFAULT NULL,
  converted tinyint(1) DEFAULT '0',
  refered_by varchar(100) DEFAULT NULL,
  lead_source varchar(100) DEFAULT NULL,
  lead_source_description text,
  status varchar(100) DEFAULT NULL,
  status_description text,
  reports_to_id char(36) DEFAULT NULL,
  account_name varchar(255) DEFAULT NULL,
  account_description text,
  contact_id char(36) DEFAULT NULL,
  account_id char(36) DEFAULT NULL,
  opportunity_id char(36) DEFAULT NULL,
  opportunity_name varchar(255) DEFAULT NULL,
  opportunity_amount varchar(50) DEFAULT NULL,
  campaign_id char(36) DEFAULT NULL,
  birthdate date DEFAULT NULL,
  portal_name varchar(255) DEFAULT NULL,
  portal_app varchar(255) DEFAULT NULL,
  website varchar(255) DEFAULT NULL,
  PRIMARY KEY (id),
  KEY idx_lead_acct_name_first (account_name, deleted),
  KEY idx_lead_last_first (last_name, first_name, deleted),
  KEY idx_lead_del_stat (last_name, status, deleted, first_name),
  KEY idx_leads_id_del (id, deleted),
  KEY idx_leads_assigned_del (deleted, assigned_user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE leads_cstm (
  id_c char(36) NOT NULL,
  jjwg_maps_lng_c float(11,8) DEFAULT '0.00000000',
  jjwg_maps_lat_c float(10,8) DEFAULT '0.00000000',
  jjwg_maps_geocode_status_c varchar(255) DEFAULT NULL,
  jjwg_maps_address_c varchar(255) DEFAULT NULL,
  fb_lead_id_c varchar(255) DEFAULT NULL,
  PRIMARY KEY (id_c)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE leads_audit (
  id char(36) NOT NULL,
  parent_id char(36) NOT NULL,
  date_created datetime DEFAULT NULL,
  created_by varchar(36) DEFAULT NULL,
  field_name varchar(100) DEFAULT NULL,
  data_type varchar(100) DEFAULT NULL,
  before_value_string varchar(255) DEFAULT NULL,
  after_value_string varchar(255) DEFAULT NULL,
  before_value_text text,
  after_value_text text,
  PRIMARY KEY (id),
  KEY idx_leads_parent_id (parent_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE email_addresses (
  id char(36) NOT NULL,
  email_address varchar(255) DEFAULT NULL,
  email_address_caps varchar(255) DEFAULT NULL,
  invalid_email tinyint(1) DEFAULT '0',
  opt_out tinyint(1) DEFAULT '0',
  confirm_opt_in varchar(255) DEFAULT 'not-opt-in',
  confirm_opt_in_date datetime DEFAULT NULL,
  confirm_opt_in_sent_date datetime DEFAULT NULL,
  confirm_opt_in_fail_date datetime DEFAULT NULL,
  confirm_opt_in_token varchar(255) DEFAULT NULL,
  date_created datetime DEFAULT NULL,
  date_modified datetime DEFAULT NULL,
  deleted tinyint(1) DEFAULT '0',
  PRIMARY KEY (id),
  KEY idx_ea_caps_opt_out_invalid (email_address_caps, opt_out, invalid_email),
  KEY idx_ea_opt_out_invalid (email_address, opt_out, invalid_email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE email_addr_bean_rel (
  id char(36) NOT NULL,
  email_address_id char(36) NOT NULL,
  bean_id char(36) NOT NULL,
  bean_module varchar(100) NOT NULL,
  primary_address tinyint(1) DEFAULT '0',
  reply_to_address tinyint(1) DEFAULT '0',
  date_created datetime DEFAULT NULL,
  date_modified datetime DEFAULT NULL,
  deleted tinyint(1) DEFAULT '0',
  PRIMARY KEY (id),
  KEY idx_email_address_id (email_address_id),
  KEY idx_bean_id (bean_id, bean_module)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Sample data: two leads from a Lead Ads import, one entered by hand.
INSERT INTO leads (id, date_entered, date_modified, modified_user_id, created_by, deleted, assigned_user_id, salutation,
                   first_name, last_name, phone_mobile, phone_work, primary_address_city, primary_address_state,
                   primary_address_postalcode, primary_address_country, converted, lead_source, status, account_name, birthdate)
VALUES
  ('1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c01', '2026-11-17 08:30:12', '2026-11-17 08:30:12', '1', '1', 0, 'seed_sally_id', 'Ms.',
   'Emma', 'Wilson', '+44 7700 900123', NULL, 'Manchester', NULL, 'M1 1AE', 'United Kingdom', 0, 'Campaign', 'New', NULL, '1988-04-12'),
  ('1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c02', '2026-11-18 14:02:55', '2026-11-19 09:10:00', 'seed_max_id', '1', 0, 'seed_max_id', 'Mr.',
   'Lucas', 'Martin', '+33 6 98 76 54 32', NULL, 'Lyon', NULL, '69002', 'France', 0, 'Campaign', 'Assigned', 'Martin & Fils', NULL),
  ('1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c03', '2026-11-19 16:45:00', '2026-11-19 16:45:00', 'seed_max_id', 'seed_max_id', 0, 'seed_max_id', NULL,
   'Priya', 'Nair', NULL, '+1 415 555 0132', 'San Francisco', 'CA', '94105', 'USA', 0, 'Trade Show', 'New', 'Nair Consulting', NULL);

INSERT INTO leads_cstm (id_c, jjwg_maps_geocode_status_c, fb_lead_id_c) VALUES
  ('1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c01', NULL, '1203847561029601'),
  ('1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c02', NULL, '1203847561029602'),
  ('1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c03', NULL, NULL);

INSERT INTO email_addresses (id, email_address, email_address_caps, invalid_email, opt_out, confirm_opt_in, date_created, date_modified, deleted) VALUES
  ('2c6d3e7f-9a01-4b2c-8d3e-4f5a6b7c8d01', 'Emma.Wilson@example.co.uk', 'EMMA.WILSON@EXAMPLE.CO.UK', 0, 0, 'not-opt-in', '2026-11-17 08:30:12', '2026-11-17 08:30:12', 0),
  ('2c6d3e7f-9a01-4b2c-8d3e-4f5a6b7c8d02', 'lucas.martin@example.fr', 'LUCAS.MARTIN@EXAMPLE.FR', 0, 0, 'not-opt-in', '2026-11-18 14:02:55', '2026-11-18 14:02:55', 0),
  ('2c6d3e7f-9a01-4b2c-8d3e-4f5a6b7c8d03', 'priya@nair-consulting.example', 'PRIYA@NAIR-CONSULTING.EXAMPLE', 0, 0, 'not-opt-in', '2026-11-19 16:45:00', '2026-11-19 16:45:00', 0);

INSERT INTO email_addr_bean_rel (id, email_address_id, bean_id, bean_module, primary_address, reply_to_address, date_created, date_modified, deleted) VALUES
  ('3d7e4f80-ab12-4c3d-9e4f-5a6b7c8d9e01', '2c6d3e7f-9a01-4b2c-8d3e-4f5a6b7c8d01', '1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c01', 'Leads', 1, 0, '2026-11-17 08:30:12', '2026-11-17 08:30:12', 0),
  ('3d7e4f80-ab12-4c3d-9e4f-5a6b7c8d9e02', '2c6d3e7f-9a01-4b2c-8d3e-4f5a6b7c8d02', '1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c02', 'Leads', 1, 0, '2026-11-18 14:02:55', '2026-11-18 14:02:55', 0),
  ('3d7e4f80-ab12-4c3d-9e4f-5a6b7c8d9e03', '2c6d3e7f-9a01-4b2c-8d3e-4f5a6b7c8d03', '1b5c2d6e-8f90-4a1b-9c2d-3e4f5a6b7c03', 'Leads', 1, 0, '2026-11-19 16:45:00', '2026-11-19 16:45:00', 0);
