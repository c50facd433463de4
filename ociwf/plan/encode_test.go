package plan

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"ociwf.dev/ociwf/internal/canon"
)

// encodeCase builds a plan that carries s, k and n in every string, map
// key and number it has, and param values of every kind.
func encodeCase(s, k string, n int64, def any) *Plan {
	prm := Param{Name: s, Type: s, Description: s, Required: n%2 == 0, Default: def, Enum: []any{s, n, def}}
	return &Plan{
		APIVersion: s,
		Workflow:   Workflow{Name: s, Version: s, Description: s, Labels: map[string]string{k: s, s: k, "a": s}},
		Source:     Source{Digest: s, Size: n},
		Params:     []Param{prm, {Name: k, Type: k}},
		Steps: []Step{
			{ID: s, Stage: int(n % 1000), Image: s, Uses: s, With: map[string]string{k: s, s + k: s}, Run: s, Args: []string{s, k, ""},
				Env: map[string]string{k: s, "Z": ""}, Needs: []string{s}, When: &Condition{Expr: s, Vars: []string{k}}, Retries: int(n % 7),
				Timeout: s, Outputs: []Output{{Name: s, Type: k, Description: s}, {Name: k, Type: s}}},
			{ID: k},
		},
		Stages: [][]string{{s, k}, nil, {}},
		Dependencies: []Dependency{
			{Kind: Kind(s), Ref: s, Pinned: s, Digest: s, Workflow: &Interface{Name: s, Version: k, Params: []Param{prm}}},
			{Kind: Kind(k), Ref: k, Pinned: k, Digest: k, Workflow: &Interface{Name: k, Version: s}},
			{Kind: Kind(k)},
		},
	}
}

func checkEncode(t *testing.T, p *Plan) {
	t.Helper()
	want, wantErr := canon.Marshal(p)
	got, err := encodePlan(p)
	if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("encodePlan =\n%s, %v\ncanon.Marshal =\n%s, %v", got, err, want, wantErr)
	}
}

// TestEncodeMatchesGeneric checks the plan encoder against the generic
// canonical encoder on the values whose encodings differ the most.
func TestEncodeMatchesGeneric(t *testing.T) {
	strs := []string{"", "a", "A", "\"\\/", "\b\f\n\r\t\x00\x01\x1f\x7f", "<>&", "\u2028\u2029", "é", "\ufffd",
		"\U0001F600", "\uE000", "\uFFFF", "\U00010000", "bad\xffutf8", "\xc3", "\xed\xa0\x80"}
	ints := []int64{0, 1, -1, 42, 1<<53 - 1, 1 << 53, 1<<53 + 1, -(1 << 53) - 1, 1e15, 1e18, 123456789012345678, math.MaxInt64, math.MinInt64}
	defs := []any{nil, "x", int64(3), int64(1<<60 + 7), true, false, []string{}, []string(nil), []string{"a", "\n"},
		3, 2.5, json.Number("1.50"), []any{int64(1), "a"}, map[string]any{"b": 1, "a": []int{2}}, math.NaN()}
	for _, s := range strs {
		for _, k := range strs {
			checkEncode(t, encodeCase(s, k, 7, "d"))
		}
	}
	for _, n := range ints {
		for _, d := range defs {
			checkEncode(t, encodeCase("s", "k", n, d))
		}
	}
	checkEncode(t, &Plan{})
	checkEncode(t, &Plan{Steps: []Step{}, Stages: [][]string{}, Params: []Param{}, Dependencies: []Dependency{}})
}

func FuzzEncode(f *testing.F) {
	f.Add("a", "b", int64(1))
	f.Add("\x00\u2028", "\U0001F600", int64(1<<53+1))
	f.Add("\uffff", "\U00010000", int64(-1))
	f.Add("bad\xff", "\xed\xa0\x80", int64(1e17))
	f.Fuzz(func(t *testing.T, s, k string, n int64) {
		checkEncode(t, encodeCase(s, k, n, n))
		checkEncode(t, encodeCase(k, s, n, []string{s, k}))
	})
}
