package connector

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/leadtail/leadtail/mapping"
)

// initRecipe recognises one CRM with a recipe in testdata/crm/<name>.
type initRecipe struct {
	name, title, kind string
	// detect returns nil when the schema is not this CRM's.
	detect func(ctx context.Context, db inspectDB, inv *inventory) (*detection, error)
}

// detection is what init learnt about a recognised CRM.
type detection struct {
	evidence    string   // the tables that gave it away
	env         []string // NAME=value lines the recipe needs in leadtail's environment
	notes       []string // what init could not decide
	replicaNote string   // why set_replica_identity_full (PostgreSQL)
	stages      []stageValues
}

// stageValues is the values of one mapping's stage column in the data.
type stageValues struct {
	mapping string
	title   string
	values  []valueCount
	// neutral is a value that is no stage (vtiger's converted = 0): it is
	// not counted as a value the recipe misses.
	neutral string
}

var initRecipes = []*initRecipe{
	{name: "odoo", title: "Odoo CRM", kind: "postgres", detect: detectOdoo},
	{name: "twenty", title: "Twenty", kind: "postgres", detect: detectTwenty},
	{name: "suitecrm", title: "SuiteCRM / SugarCRM CE", kind: "mysql", detect: detectSuiteCRM},
	{name: "espocrm", title: "EspoCRM", kind: "mysql", detect: detectEspoCRM},
	{name: "vtiger", title: "vtiger CRM", kind: "mysql", detect: detectVtiger},
}

// hasCols reports whether t exists and has every column.
func hasCols(t *invTable, cols ...string) bool {
	if t == nil {
		return false
	}
	for _, c := range cols {
		if t.col(c) == nil {
			return false
		}
	}
	return true
}

func detectOdoo(ctx context.Context, db inspectDB, inv *inventory) (*detection, error) {
	lead, stage := inv.table("public", "crm_lead"), inv.table("public", "crm_stage")
	if !hasCols(lead, "stage_id", "type", "active", "probability", "email_from") || !hasCols(stage, "name", "sequence") {
		return nil, nil
	}
	d := &detection{evidence: "tables public.crm_lead and public.crm_stage", replicaNote: "the recipe needs before images of crm_lead"}
	if lead.col("facebook_lead_id") == nil {
		d.notes = append(d.notes, "crm_lead has no facebook_lead_id column (no Lead Ads connector module installed?). "+
			"Copy the recipe and point its lead_id at the column that holds Meta's lead id (an Odoo Studio field is x_studio_<name>), "+
			"or delete that line: email and phone then identify the leads")
	}
	nameExpr := "s.name::text"
	if c := stage.col("name"); c != nil && c.dataType == "jsonb" {
		nameExpr = "COALESCE(s.name->>'en_US', s.name::text)"
	}
	isWon := "false"
	if stage.col("is_won") != nil {
		isWon = "s.is_won"
	}
	rows, err := db.query(ctx, fmt.Sprintf(`SELECT s.id::text, count(l.id), %s || CASE WHEN %s THEN ', is_won' ELSE '' END
		  FROM public.crm_stage s LEFT JOIN public.crm_lead l ON l.stage_id = s.id AND l.active
		 GROUP BY s.id ORDER BY s.sequence, s.id`, nameExpr, isWon))
	if err != nil {
		return nil, err
	}
	vals := readCounts(rows)
	rows, err = db.query(ctx, `SELECT NULL, count(*) FROM public.crm_lead WHERE active AND stage_id IS NULL HAVING count(*) > 0`)
	if err != nil {
		return nil, err
	}
	vals = append(vals, readCounts(rows)...)
	// The recipe assumes the ids of a fresh database; say so when the
	// stage names tell otherwise.
	expect := map[string]string{"1": "New", "2": "Qualified", "3": "Proposition", "4": "Won"}
	for _, v := range vals {
		if want, ok := expect[v.value]; ok && !strings.HasPrefix(v.label, want) {
			d.notes = append(d.notes, fmt.Sprintf("crm_stage %s is %q here, not %q as on a fresh database: the recipe maps stage ids, "+
				"so copy it and map your ids (listed below) to the events you want", v.value, v.label, want))
		}
	}
	d.stages = []stageValues{{mapping: "odoo-crm-lead", title: "Stages (crm_stage) and active leads in each", values: vals}}
	return d, nil
}

var twentySchemaRe = regexp.MustCompile(`^workspace_[0-9a-z]+$`)

func detectTwenty(ctx context.Context, db inspectDB, inv *inventory) (*detection, error) {
	var schemas []string
	for _, t := range inv.tables {
		if t.name == "opportunity" && twentySchemaRe.MatchString(t.schema) && hasCols(t, "stage", "pointOfContactId", "deletedAt") &&
			hasCols(inv.table(t.schema, "person"), "nameFirstName", "emailsPrimaryEmail") {
			schemas = append(schemas, t.schema)
		}
	}
	if len(schemas) == 0 {
		return nil, nil
	}
	// The workspace with the most opportunities is the one in use.
	best, bestN := "", int64(-1)
	counts := map[string]int64{}
	for _, s := range schemas {
		rows, err := db.query(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.opportunity`, db.quoteIdent(s)))
		if err != nil {
			return nil, err
		}
		n, _ := strconv.ParseInt(str(rows[0][0]), 10, 64)
		counts[s] = n
		if n > bestN {
			best, bestN = s, n
		}
	}
	d := &detection{
		evidence:    fmt.Sprintf("workspace schema %s with tables opportunity and person", best),
		env:         []string{"TWENTY_WORKSPACE_SCHEMA=" + best},
		replicaNote: "the recipe needs before images of the opportunity table",
	}
	if len(schemas) > 1 {
		var others []string
		for _, s := range schemas {
			if s != best {
				others = append(others, fmt.Sprintf("%s (%d opportunities)", s, counts[s]))
			}
		}
		d.notes = append(d.notes, fmt.Sprintf("%d workspaces: this config follows %s (%d opportunities, the most). "+
			"Others: %s; follow one with its own leadtail (its own TWENTY_WORKSPACE_SCHEMA, slot and state_dir)",
			len(schemas), best, bestN, strings.Join(others, ", ")))
	}
	if inv.table(best, "person").col("metaLeadId") == nil {
		d.notes = append(d.notes, `People have no "metaLeadId" field: add a Text field "Meta Lead ID" (API name metaLeadId) and fill it from the Lead Ads import, `+
			"or copy the recipe and delete its lead_id line: email and phone then identify the leads")
	}
	q := db.quoteIdent(best)
	rows, err := db.query(ctx, fmt.Sprintf(`SELECT e.enumlabel, count(o.id)
		  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
		  LEFT JOIN %s.opportunity o ON o.stage::text = e.enumlabel AND o."deletedAt" IS NULL
		 WHERE t.typname = 'opportunity_stage_enum' AND n.nspname = %s
		 GROUP BY e.enumlabel, e.enumsortorder ORDER BY e.enumsortorder`, q, sqlString(best)))
	if err != nil {
		return nil, err
	}
	d.stages = []stageValues{{mapping: "twenty-opportunity", title: "Opportunity stages (all options) and opportunities in each", values: readCounts(rows)}}
	return d, nil
}

// mysqlDBEnv is the env line for a recipe's database variable, when the
// database is not the recipe's default name.
func mysqlDBEnv(db inspectDB, name, def string) []string {
	if db.database() == def {
		return nil
	}
	return []string{name + "=" + db.database()}
}

func detectSuiteCRM(ctx context.Context, db inspectDB, inv *inventory) (*detection, error) {
	s := db.database()
	leads := inv.table(s, "leads")
	if !hasCols(leads, "status", "deleted", "converted", "phone_mobile") || !hasCols(inv.table(s, "email_addr_bean_rel"), "bean_id", "bean_module") ||
		inv.table(s, "email_addresses") == nil {
		return nil, nil
	}
	d := &detection{evidence: "tables leads, email_addr_bean_rel and email_addresses", env: mysqlDBEnv(db, "SUITECRM_DATABASE", "suitecrm")}
	if !hasCols(inv.table(s, "leads_cstm"), "fb_lead_id_c") {
		d.notes = append(d.notes, "leads_cstm has no fb_lead_id_c column: add the custom field fb_lead_id in Studio (Leads > Fields) and fill it from the Lead Ads import, "+
			"or copy the recipe and delete its lead_id line and its custom lookup: email and phone then identify the leads")
	}
	rows, err := db.query(ctx, "SELECT status, COUNT(*) FROM leads WHERE deleted = 0 GROUP BY status ORDER BY COUNT(*) DESC, status")
	if err != nil {
		return nil, err
	}
	d.stages = []stageValues{{mapping: "suitecrm-leads", title: "Lead statuses (leads.status, not deleted)", values: readCounts(rows)}}
	return d, nil
}

func detectEspoCRM(ctx context.Context, db inspectDB, inv *inventory) (*detection, error) {
	s := db.database()
	lead := inv.table(s, "lead")
	if !hasCols(lead, "status", "deleted", "first_name", "created_at") || !hasCols(inv.table(s, "entity_email_address"), "entity_id", "entity_type") ||
		inv.table(s, "email_address") == nil {
		return nil, nil
	}
	d := &detection{evidence: "tables lead, entity_email_address and email_address", env: mysqlDBEnv(db, "ESPOCRM_DATABASE", "espocrm")}
	if lead.col("c_fb_lead_id") == nil {
		d.notes = append(d.notes, "lead has no c_fb_lead_id column: add the field fbLeadId to Lead in the Entity Manager and fill it from the Lead Ads import, "+
			"or copy the recipe and delete its lead_id line: email and phone then identify the leads")
	}
	if !hasCols(inv.table(s, "entity_phone_number"), "entity_id") {
		d.notes = append(d.notes, "no entity_phone_number table: the recipe's phone lookup will fail; copy the recipe and delete ph and the phones lookup")
	}
	rows, err := db.query(ctx, "SELECT status, COUNT(*) FROM lead WHERE deleted = 0 GROUP BY status ORDER BY COUNT(*) DESC, status")
	if err != nil {
		return nil, err
	}
	d.stages = []stageValues{{mapping: "espocrm-lead", title: "Lead statuses (lead.status, not deleted)", values: readCounts(rows)}}
	return d, nil
}

var vtigerLeadIDLabelRe = regexp.MustCompile(`(?i)(meta|facebook|fb).*lead|lead.*(meta|facebook|fb)|lead ?id|leadgen`)

func detectVtiger(ctx context.Context, db inspectDB, inv *inventory) (*detection, error) {
	s := db.database()
	if !hasCols(inv.table(s, "vtiger_leaddetails"), "leadid", "leadstatus", "converted", "email") ||
		!hasCols(inv.table(s, "vtiger_crmentity"), "crmid", "deleted") || inv.table(s, "vtiger_leadaddress") == nil {
		return nil, nil
	}
	d := &detection{evidence: "tables vtiger_leaddetails, vtiger_leadaddress and vtiger_crmentity", env: mysqlDBEnv(db, "VTIGER_DATABASE", "vtiger")}
	// The custom field's column is cf_<fieldid>: find it by its label.
	col := ""
	if hasCols(inv.table(s, "vtiger_field"), "columnname", "fieldlabel", "tablename") {
		rows, err := db.query(ctx, "SELECT columnname, fieldlabel FROM vtiger_field WHERE tablename = 'vtiger_leadscf' ORDER BY fieldid")
		if err != nil {
			return nil, err
		}
		var labels []string
		for _, r := range rows {
			labels = append(labels, fmt.Sprintf("%s %q", str(r[0]), str(r[1])))
			if col == "" && vtigerLeadIDLabelRe.MatchString(str(r[1])) && hasCols(inv.table(s, "vtiger_leadscf"), str(r[0])) {
				col = str(r[0])
			}
		}
		if col == "" {
			note := "no Leads custom field looks like Meta's lead id"
			if len(labels) > 0 {
				note += " (custom fields: " + strings.Join(labels, ", ") + ")"
			}
			d.notes = append(d.notes, note+": set VTIGER_LEAD_ID_COLUMN to the right cf_ column, or copy the recipe and delete its lead_id lines and custom lookups")
		}
	}
	if col != "" {
		d.env = append(d.env, "VTIGER_LEAD_ID_COLUMN="+col)
	} else {
		d.env = append(d.env, "VTIGER_LEAD_ID_COLUMN=<the cf_ column of the Meta lead id custom field>   # TODO")
	}
	rows, err := db.query(ctx, `SELECT d.leadstatus, COUNT(*) FROM vtiger_leaddetails d
		JOIN vtiger_crmentity e ON e.crmid = d.leadid AND e.deleted = 0
		GROUP BY d.leadstatus ORDER BY COUNT(*) DESC, d.leadstatus`)
	if err != nil {
		return nil, err
	}
	conv, err := db.query(ctx, `SELECT CAST(d.converted AS CHAR), COUNT(*) FROM vtiger_leaddetails d
		JOIN vtiger_crmentity e ON e.crmid = d.leadid AND e.deleted = 0
		GROUP BY d.converted ORDER BY d.converted`)
	if err != nil {
		return nil, err
	}
	d.stages = []stageValues{
		{mapping: "vtiger-leads", title: "Lead statuses (vtiger_leaddetails.leadstatus, not deleted)", values: readCounts(rows)},
		{mapping: "vtiger-leads-converted", title: "Converted flag (vtiger_leaddetails.converted, not deleted)", values: readCounts(conv), neutral: "0"},
	}
	return d, nil
}

// parseStageEvents reads the stage -> event lists from a mapping file.
func parseStageEvents(data []byte) ([]stageEvents, error) {
	var f struct {
		Mappings []mapping.Config `yaml:"mappings"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	var out []stageEvents
	for _, m := range f.Mappings {
		se := stageEvents{mapping: m.Name, column: m.Stage.Column}
		n := m.Stage.Events
		for i := 0; i+1 < len(n.Content); i += 2 {
			se.pairs = append(se.pairs, [2]string{n.Content[i].Value, n.Content[i+1].Value})
		}
		out = append(out, se)
	}
	return out, nil
}
