package connector

import (
	"strings"
	"testing"

	"github.com/leadtail/leadtail"
)

func TestInitDSNWithoutPassword(t *testing.T) {
	for _, tc := range []struct {
		dsn, want string
		had       bool
	}{
		{"postgres://leadtail:s3cr%40t@db.internal:5432/odoo?sslmode=require",
			"postgres://leadtail:${LEADTAIL_DB_PASSWORD}@db.internal:5432/odoo?sslmode=require", true},
		{"postgresql://leadtail@127.0.0.1/crm", "postgresql://leadtail@127.0.0.1/crm", false},
		{"leadtail:p@ss/word@tcp(127.0.0.1:3306)/suitecrm", "leadtail:${LEADTAIL_DB_PASSWORD}@tcp(127.0.0.1:3306)/suitecrm", true},
		{"root@tcp(127.0.0.1:3306)/crm", "root@tcp(127.0.0.1:3306)/crm", false},
		{"leadtail:pw@unix(/run/mysqld/mysqld.sock)/espocrm?tls=false", "leadtail:${LEADTAIL_DB_PASSWORD}@unix(/run/mysqld/mysqld.sock)/espocrm?tls=false", true},
	} {
		got, had := dsnWithoutPassword(tc.dsn)
		if got != tc.want || had != tc.had {
			t.Errorf("dsnWithoutPassword(%q) = %q, %v; want %q, %v", tc.dsn, got, had, tc.want, tc.had)
		}
		if had && (strings.Contains(got, "s3cr") || strings.Contains(got, "p@ss") || strings.Contains(got, ":pw@")) {
			t.Errorf("password left in %q", got)
		}
	}
}

// TestInitRecipesEmbedded: every recipe init knows is embedded in the
// binary, and the mappings init reports on exist in its mapping file with
// a stage list.
func TestInitRecipesEmbedded(t *testing.T) {
	reported := map[string][]string{
		"odoo":     {"odoo-crm-lead"},
		"twenty":   {"twenty-opportunity"},
		"suitecrm": {"suitecrm-leads"},
		"espocrm":  {"espocrm-lead"},
		"vtiger":   {"vtiger-leads", "vtiger-leads-converted"},
	}
	if len(initRecipes) != len(reported) {
		t.Fatalf("%d recipes, test knows %d", len(initRecipes), len(reported))
	}
	for _, r := range initRecipes {
		t.Run(r.name, func(t *testing.T) {
			if _, err := leadtail.Recipes.ReadFile("testdata/crm/" + r.name + "/mapping.yaml"); err != nil {
				t.Fatalf("not embedded: %v", err)
			}
			events, err := recipeEvents(r.name)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range reported[r.name] {
				found := false
				for _, se := range events {
					if se.mapping == name && len(se.pairs) > 0 {
						found = true
					}
				}
				if !found {
					t.Errorf("mapping %q with stage events missing from the recipe (have %+v)", name, events)
				}
			}
		})
	}
}

func TestInitWrapComment(t *testing.T) {
	long := strings.Repeat("word ", 40)
	out := wrapComment(long, "# ")
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 80 {
			t.Errorf("line too long (%d): %q", len(line), line)
		}
	}
	if strings.Join(strings.Fields(strings.ReplaceAll(out, "# ", "")), " ") != strings.TrimSpace(long) {
		t.Errorf("words lost: %q", out)
	}
}
