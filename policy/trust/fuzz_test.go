package trust_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/trust"
)

// FuzzParse feeds arbitrary bytes to the trust-policy parser: no panic,
// every refusal is an *Error naming the file, and an accepted policy is
// valid as its own JSON encoding and decodes to the same policy again.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "policies", "*.yaml"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("apiVersion: ociwf.dev/trust/v1\n"))
	f.Add([]byte("a: &a [*a, *a, *a]\nb: &b [*a, *a, *a]\n"))
	f.Add([]byte("{\"trustPolicies\": [[[[[[[[[[[[]]]]]]]]]]]]}"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := trust.Parse("fuzz.yaml", src)
		if err != nil {
			var te *trust.Error
			if !errors.As(err, &te) || te.File != "fuzz.yaml" {
				t.Fatalf("refusal that is not a *trust.Error: %v", err)
			}
			if len(src) > trust.MaxPolicyBytes && !errors.Is(err, errdef.ErrTooLarge) {
				t.Fatalf("oversized policy refused without ErrTooLarge: %v", err)
			}
			return
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted policy does not encode: %v", err)
		}
		again, err := trust.Parse("again.json", raw)
		if err != nil {
			t.Fatalf("accepted policy is refused as its own encoding %s: %v", raw, err)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("policy changes through its encoding:\n%#v\n%#v", p, again)
		}
	})
}
