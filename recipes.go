// Package leadtail holds the files that ship inside the leadtail binary:
// the CRM recipes' mapping files (testdata/crm/<crm>/mapping.yaml). `leadtail
// init` reads a recipe's stage list from them, and writes a copy next to a
// new configuration when the recipes are not on disk.
package leadtail

import "embed"

// Recipes holds testdata/crm/<crm>/mapping.yaml for every recipe.
//
//go:embed testdata/crm/*/mapping.yaml
var Recipes embed.FS
