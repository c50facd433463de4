package lifecycle_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// A doc comment paragraph starting "Deprecated:" marks an identifier as
// deprecated for go vet, staticcheck and editors; the state named
// Deprecated must not be.
func TestNoIdentifierIsMarkedDeprecated(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			var doc *ast.CommentGroup
			switch d := n.(type) {
			case *ast.ValueSpec:
				doc = d.Doc
			case *ast.TypeSpec:
				doc = d.Doc
			case *ast.FuncDecl:
				doc = d.Doc
			case *ast.GenDecl:
				doc = d.Doc
			case *ast.Field:
				doc = d.Doc
			}
			if doc == nil {
				return true
			}
			for _, p := range strings.Split(doc.Text(), "\n\n") {
				if strings.HasPrefix(p, "Deprecated:") {
					t.Errorf("%s: a doc comment marks an identifier deprecated: %q", fset.Position(doc.Pos()), strings.SplitN(p, "\n", 2)[0])
				}
			}
			return true
		})
	}
}
