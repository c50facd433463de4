package dsl

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of the workflow language, for
// editors and linters. Parse enforces everything it says and more.
//
//go:embed workflow.schema.json
var Schema []byte
