-- vtiger CRM (7.x / 8.x): the tables the leadtail recipe touches (MySQL /
-- MariaDB), from vtiger's ADOdb schema
--   vtiger-crm/vtigercrm schema/DatabaseSchema.xml
--     vtiger_crmentity     every record's owner, times and deleted flag (crmid)
--     vtiger_leaddetails   the lead: leadstatus, email, names, converted
--     vtiger_leadaddress   phone, mobile and address (leadaddressid = leadid)
--     vtiger_leadscf       the Leads module's custom fields (cf_<fieldid> columns)
--     vtiger_field         field metadata: which cf_ column is which custom field
-- (ADOdb types: I -> int, C -> varchar, X -> text, T -> datetime, D -> date.)
-- Later vtiger versions add a few columns (e.g. vtiger_crmentity.label,
-- source); they do not matter to the recipe.
--   vtiger-crm/vtigercrm include/Webservices/ConvertLead.php
--     converting a lead runs UPDATE vtiger_leaddetails SET converted = 1
--     (leadstatus is left as it is).
-- The lead statuses are vtiger's default Lead Status picklist (vtiger_leadstatus):
-- --None--, Attempted to Contact, Cold, Contact in Future, Contacted, Hot,
-- Junk Lead, Lost Lead, Not Contacted, Pre Qualified, Qualified, Warm.
--
-- cf_853 stands for the custom field "Meta Lead ID" the recipe expects
-- (Settings > Module Management > Leads > Layout Editor > Add Custom Field,
-- Text); vtiger names its column cf_<fieldid>, different on every
-- installation. `leadtail init` finds it through vtiger_field.
--
-- mysqltest runs one statement per Exec: statements end with ";" at a line end.

CREATE TABLE vtiger_crmentity (
  crmid int(19) NOT NULL,
  smcreatorid int(19) NOT NULL DEFAULT '0',
  smownerid int(19) NOT NULL DEFAULT '0',
  modifiedby int(19) NOT NULL DEFAULT '0',
  setype varchar(30) NOT NULL,
  description text,
  createdtime datetime NOT NULL,
  modifiedtime datetime NOT NULL,
  viewedtime datetime DEFAULT NULL,
  status varchar(50) DEFAULT NULL,
  version int(19) NOT NULL DEFAULT '0',
  presence int(1) DEFAULT '1',
  deleted int(1) NOT NULL DEFAULT '0',
  PRIMARY KEY (crmid),
  KEY crmentity_smcreatorid_idx (smcreatorid),
  KEY crmentity_modifiedby_idx (modifiedby),
  KEY crmentity_deleted_idx (deleted),
  KEY crm_ownerid_del_setype_idx (smownerid, deleted, setype)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

CREATE TABLE vtiger_leaddetails (
  leadid int(19) NOT NULL,
  lead_no varchar(100) NOT NULL,
  email varchar(100) DEFAULT NULL,
  interest varchar(50) DEFAULT NULL,
  firstname varchar(40) DEFAULT NULL,
  salutation varchar(200) DEFAULT NULL,
  lastname varchar(80) NOT NULL,
  company varchar(100) NOT NULL,
  annualrevenue int(19) DEFAULT '0',
  industry varchar(200) DEFAULT NULL,
  campaign varchar(30) DEFAULT NULL,
  rating varchar(200) DEFAULT NULL,
  leadstatus varchar(50) DEFAULT NULL,
  leadsource varchar(200) DEFAULT NULL,
  converted int(1) DEFAULT '0',
  designation varchar(50) DEFAULT 'SalesMan',
  licencekeystatus varchar(50) DEFAULT NULL,
  space varchar(250) DEFAULT NULL,
  comments text,
  priority varchar(50) DEFAULT NULL,
  demorequest varchar(50) DEFAULT NULL,
  partnercontact varchar(50) DEFAULT NULL,
  productversion varchar(20) DEFAULT NULL,
  product varchar(50) DEFAULT NULL,
  maildate date DEFAULT NULL,
  nextstepdate date DEFAULT NULL,
  fundingsituation varchar(50) DEFAULT NULL,
  purpose varchar(50) DEFAULT NULL,
  evaluationstatus varchar(50) DEFAULT NULL,
  transferdate date DEFAULT NULL,
  revenuetype varchar(50) DEFAULT NULL,
  noofemployees int(50) DEFAULT NULL,
  secondaryemail varchar(100) DEFAULT NULL,
  assignleadchk int(1) DEFAULT '0',
  PRIMARY KEY (leadid),
  UNIQUE KEY lead_no (lead_no),
  KEY leaddetails_converted_leadstatus_idx (converted, leadstatus),
  CONSTRAINT fk_1_vtiger_leaddetails FOREIGN KEY (leadid) REFERENCES vtiger_crmentity (crmid) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

CREATE TABLE vtiger_leadaddress (
  leadaddressid int(19) NOT NULL DEFAULT '0',
  city varchar(30) DEFAULT NULL,
  code varchar(30) DEFAULT NULL,
  state varchar(30) DEFAULT NULL,
  pobox varchar(30) DEFAULT NULL,
  country varchar(30) DEFAULT NULL,
  phone varchar(50) DEFAULT NULL,
  mobile varchar(50) DEFAULT NULL,
  fax varchar(50) DEFAULT NULL,
  lane varchar(250) DEFAULT NULL,
  leadaddresstype varchar(30) DEFAULT 'Billing',
  PRIMARY KEY (leadaddressid),
  CONSTRAINT fk_1_vtiger_leadaddress FOREIGN KEY (leadaddressid) REFERENCES vtiger_leaddetails (leadid) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

CREATE TABLE vtiger_leadscf (
  leadid int(19) NOT NULL DEFAULT '0',
  cf_853 varchar(100) DEFAULT '',
  PRIMARY KEY (leadid),
  CONSTRAINT fk_1_vtiger_leadscf FOREIGN KEY (leadid) REFERENCES vtiger_leaddetails (leadid) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

CREATE TABLE vtiger_field (
  tabid int(19) NOT NULL,
  fieldid int(19) NOT NULL AUTO_INCREMENT,
  columnname varchar(30) NOT NULL,
  tablename varchar(50) NOT NULL,
  generatedtype int(19) NOT NULL DEFAULT '0',
  uitype varchar(30) NOT NULL,
  fieldname varchar(50) NOT NULL,
  fieldlabel varchar(50) NOT NULL,
  readonly int(1) NOT NULL,
  presence int(19) NOT NULL DEFAULT '1',
  defaultvalue text,
  maximumlength int(19) DEFAULT NULL,
  sequence int(19) DEFAULT NULL,
  block int(19) DEFAULT NULL,
  displaytype int(19) DEFAULT NULL,
  typeofdata varchar(100) DEFAULT NULL,
  quickcreate int(10) NOT NULL DEFAULT '1',
  quickcreatesequence int(19) DEFAULT NULL,
  info_type varchar(20) DEFAULT NULL,
  masseditable int(10) NOT NULL DEFAULT '1',
  PRIMARY KEY (fieldid),
  KEY field_tabid_idx (tabid),
  KEY field_fieldname_idx (fieldname),
  KEY field_block_idx (block),
  KEY field_displaytype_idx (displaytype)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

-- Sample data. Leads is module (tab) 7.
INSERT INTO vtiger_field (tabid, fieldid, columnname, tablename, generatedtype, uitype, fieldname, fieldlabel, readonly, presence, maximumlength, sequence, block, displaytype, typeofdata, quickcreate, info_type, masseditable) VALUES
  (7, 40, 'leadstatus', 'vtiger_leaddetails', 1, '15', 'leadstatus', 'Lead Status', 1, 2, 100, 9, 13, 1, 'V~O', 1, 'BAS', 1),
  (7, 853, 'cf_853', 'vtiger_leadscf', 2, '1', 'cf_853', 'Meta Lead ID', 1, 2, 100, 1, 14, 1, 'V~O~LE~100', 1, 'BAS', 1);

INSERT INTO vtiger_crmentity (crmid, smcreatorid, smownerid, modifiedby, setype, createdtime, modifiedtime, presence, deleted) VALUES
  (101, 1, 5, 1, 'Leads', '2026-11-18 07:10:00', '2026-11-18 07:10:00', 1, 0),
  (102, 5, 5, 5, 'Leads', '2026-11-19 13:25:41', '2026-11-19 15:00:00', 1, 0);

INSERT INTO vtiger_leaddetails (leadid, lead_no, email, firstname, salutation, lastname, company, leadstatus, leadsource, converted, secondaryemail) VALUES
  (101, 'LEA12', 'hana.novak@example.cz', 'Hana', 'Ms.', 'Novák', 'Novák Stavby s.r.o.', 'Not Contacted', 'Web Site', 0, NULL),
  (102, 'LEA13', 'd.okafor@example.ng', 'David', 'Mr.', 'Okafor', 'Okafor Logistics', 'Attempted to Contact', 'Cold Call', 0, 'david@okafor-logistics.example');

INSERT INTO vtiger_leadaddress (leadaddressid, city, code, state, country, phone, mobile, lane) VALUES
  (101, 'Praha', '110 00', NULL, 'Czech Republic', NULL, '+420 601 123 456', 'Národní 10'),
  (102, 'Lagos', '100001', 'Lagos', 'Nigeria', '+234 1 234 5678', NULL, '12 Marina Rd');

INSERT INTO vtiger_leadscf (leadid, cf_853) VALUES
  (101, '1203847561029801'),
  (102, '');
