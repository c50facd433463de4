package lifecycle_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

func TestSchemasCompile(t *testing.T) {
	for name, src := range map[string][]byte{"event": lifecycle.EventSchema, "approval": lifecycle.ApprovalSchema} {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(name+".json", doc); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Compile(name + ".json"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// relayout re-encodes a JSON document with its keys in reverse order and
// other whitespace, as another signer's tool might lay it out.
func relayout(t *testing.T, raw []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	// Reverse-sorted keys, spaces and newlines, and an escaped slash in
	// the strings: the same JSON value.
	for i := 0; i < len(keys); i++ {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] > keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	var b strings.Builder
	b.WriteString("{\n")
	for i, k := range keys {
		var v bytes.Buffer
		if err := json.Indent(&v, m[k], "    ", "\t"); err != nil {
			t.Fatal(err)
		}
		val := strings.ReplaceAll(v.String(), "/", `\/`)
		if i > 0 {
			b.WriteString(" ,\n")
		}
		b.WriteString("  \"" + k + "\" :  " + val)
	}
	b.WriteString("\n}\n")
	return []byte(b.String())
}

// An event's ID is the hash of its canonical JSON: the ID govern computes
// before writing is the one a verifier computes from whatever layout the
// stored predicate has.
func TestEventIDIsCanonical(t *testing.T) {
	ev := lifecycle.Event{Workflow: wf, State: lifecycle.Retired, Previous: other, Sequence: 4, Time: t0,
		Actor: "Zoë <zoe@example.com> & co", Reason: "CVE-2026-0001: </script>", Replacement: "r.example/a/b@" + other,
		Emergency: &lifecycle.Emergency{Justification: "j", Impact: "i", Remediation: "r"}}
	raw, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	id, err := ev.ID()
	if err != nil || !lifecycle.ValidID(id) {
		t.Fatalf("ID %q, %v", id, err)
	}
	alt := relayout(t, raw)
	if bytes.Equal(alt, raw) {
		t.Fatal("relayout changed nothing")
	}
	for _, r := range [][]byte{raw, alt} {
		got, gotID, err := lifecycle.DecodeEvent(r)
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if gotID != id {
			t.Fatalf("DecodeEvent ID %s, Event.ID %s, for\n%s", gotID, id, r)
		}
		if again, _ := got.ID(); again != id {
			t.Fatalf("decoded event's ID %s, want %s", again, id)
		}
	}
	// Another value has another ID.
	ev.Sequence = 5
	if id2, _ := ev.ID(); id2 == id {
		t.Fatal("two events, one ID")
	}

	a := lifecycle.Approval{Workflow: wf, Request: id, Decision: lifecycle.Approve, Time: t0, Comment: "ok",
		Checklist: []lifecycle.ChecklistItem{{Item: "tests", Outcome: "pass"}, {Item: "docs", Outcome: "n/a", Note: "none"}},
		Risk:      &lifecycle.Risk{Level: "low"}}
	raw, err = a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	aid, _ := a.ID()
	if _, gotID, err := lifecycle.DecodeApproval(relayout(t, raw)); err != nil || gotID != aid {
		t.Fatalf("approval: %s %v, want %s", gotID, err, aid)
	}
}

// A predicate with the same key twice has no single value: it is refused,
// not hashed by one reading and decoded by another.
func TestDecodeRefusesDuplicateKeys(t *testing.T) {
	raw := `{"workflow":"` + wf + `","state":"review","sequence":1,"time":"2026-03-01T12:00:00Z","state":"retired","reason":"x"}`
	if _, _, err := lifecycle.DecodeEvent([]byte(raw)); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("duplicate keys: %v", err)
	}
}

// A predicate's ID hashes its bytes as RFC 8785 canonicalises them: one
// that is not UTF-8 would decode to another text than the one hashed.
func TestDecodeRefusesInvalidUTF8(t *testing.T) {
	raw := []byte(`{"workflow":"` + wf + `","state":"review","sequence":1,"time":"2026-03-01T12:00:00Z","actor":"` + "\xff\xfe" + `"}`)
	if _, _, err := lifecycle.DecodeEvent(raw); !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("event: %v", err)
	}
	raw = []byte(`{"workflow":"` + wf + `","request":"` + other + `","decision":"approve","time":"2026-03-01T12:00:00Z","comment":"` + "\xc3" + `"}`)
	if _, _, err := lifecycle.DecodeApproval(raw); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("approval: %v", err)
	}
}

func TestDecodeEventSchema(t *testing.T) {
	valid := map[string]any{"workflow": wf, "state": "deprecated", "previous": other, "sequence": 2, "time": "2026-03-01T12:00:00Z", "reason": "old"}
	with := func(edit func(m map[string]any)) []byte {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		edit(m)
		raw, _ := json.Marshal(m)
		return raw
	}
	if _, _, err := lifecycle.DecodeEvent(with(func(map[string]any) {})); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	for _, tc := range []struct {
		name string
		raw  []byte
		path string // in the error
	}{
		{"unknown field", with(func(m map[string]any) { m["approvedBy"] = "me" }), "approvedBy"},
		{"sequence 1 with a previous event", with(func(m map[string]any) { m["sequence"] = 1 }), "previous"},
		{"sequence 2 without a previous event", with(func(m map[string]any) { delete(m, "previous") }), "previous"},
		{"sequence 0", with(func(m map[string]any) { m["sequence"] = 0 }), "/sequence"},
		{"fractional sequence", with(func(m map[string]any) { m["sequence"] = 2.5 }), "/sequence"},
		{"deprecated without a reason", with(func(m map[string]any) { delete(m, "reason") }), "reason"},
		{"deprecated with an empty reason", with(func(m map[string]any) { m["reason"] = "" }), "/reason"},
		{"retired without a reason", with(func(m map[string]any) { m["state"] = "retired"; delete(m, "reason") }), "reason"},
		{"archived without a reason", with(func(m map[string]any) { m["state"] = "archived"; delete(m, "reason") }), "reason"},
		{"emergency on a deprecation", with(func(m map[string]any) {
			m["emergency"] = map[string]any{"justification": "j", "impact": "i", "remediation": "r"}
		}), "/state"},
		{"emergency without remediation", with(func(m map[string]any) {
			m["state"] = "retired"
			m["emergency"] = map[string]any{"justification": "j", "impact": "i"}
		}), "/emergency"},
		{"draft is no event", with(func(m map[string]any) { m["state"] = "draft" }), "/state"},
		{"approved is no event", with(func(m map[string]any) { m["state"] = "approved" }), "/state"},
		{"workflow not a digest", with(func(m map[string]any) { m["workflow"] = "latest" }), "/workflow"},
		{"workflow in upper case", with(func(m map[string]any) { m["workflow"] = strings.ToUpper(wf) }), "/workflow"},
		{"workflow of another algorithm", with(func(m map[string]any) { m["workflow"] = "sha512:" + strings.Repeat("a", 128) }), "/workflow"},
		{"previous cut short", with(func(m map[string]any) { m["previous"] = wf[:20] }), "/previous"},
		{"replacement by tag", with(func(m map[string]any) { m["replacement"] = "r.example/a:2" }), "/replacement"},
		{"time without a zone", with(func(m map[string]any) { m["time"] = "2026-03-01T12:00:00" }), "/time"},
		{"time as a number", with(func(m map[string]any) { m["time"] = 1700000000 }), "/time"},
		{"missing time", with(func(m map[string]any) { delete(m, "time") }), "time"},
		{"not an object", []byte(`["review"]`), ""},
		{"not JSON", []byte(`{"workflow":`), ""},
		{"empty", nil, ""},
		{"null", []byte(`null`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, id, err := lifecycle.DecodeEvent(tc.raw)
			var pe *lifecycle.PredicateError
			if !errors.As(err, &pe) || !errors.Is(err, errdef.ErrInvalid) || e != nil || id != "" {
				t.Fatalf("err = %v (event %v), want a *PredicateError", err, e)
			}
			if pe.Type != "event" || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %q, want it to name %q", err, tc.path)
			}
			t.Log(err)
		})
	}
}

func TestDecodeApprovalSchema(t *testing.T) {
	ok := `{"workflow":"` + wf + `","request":"` + other + `","decision":"approve","time":"2026-03-01T12:00:00Z"}`
	if _, _, err := lifecycle.DecodeApproval([]byte(ok)); err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{
		"unknown decision": strings.Replace(ok, `"approve"`, `"abstain"`, 1),
		"no request":       strings.Replace(ok, `"request":"`+other+`",`, "", 1),
		"unknown field":    strings.Replace(ok, `"decision"`, `"weight":2,"decision"`, 1),
		"bad risk":         strings.Replace(ok, `"decision"`, `"risk":{"level":"extreme"},"decision"`, 1),
		"bad checklist":    strings.Replace(ok, `"decision"`, `"checklist":[{"item":"","outcome":"pass"}],"decision"`, 1),
	} {
		if _, _, err := lifecycle.DecodeApproval([]byte(raw)); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Oversized predicates are refused before they are parsed.
func TestDecodeOversized(t *testing.T) {
	raw := []byte(`{"workflow":"` + wf + `","state":"retired","sequence":1,"time":"2026-03-01T12:00:00Z","reason":"` +
		strings.Repeat("x", lifecycle.MaxPredicateBytes) + `"}`)
	for _, decode := range []func([]byte) error{
		func(b []byte) error { _, _, err := lifecycle.DecodeEvent(b); return err },
		func(b []byte) error { _, _, err := lifecycle.DecodeApproval(b); return err },
	} {
		err := decode(raw)
		var pe *lifecycle.PredicateError
		if !errors.Is(err, errdef.ErrTooLarge) || !errors.As(err, &pe) || !errors.Is(err, errdef.ErrInvalid) {
			t.Fatalf("oversized: %v", err)
		}
	}
}

// Marshal refuses what the schema refuses, so that govern never signs an
// event a verifier would ignore.
func TestMarshalChecksTheSchema(t *testing.T) {
	for name, ev := range map[string]lifecycle.Event{
		"no reason":             {Workflow: wf, State: lifecycle.Retired, Sequence: 1, Time: t0},
		"sequence 0":            {Workflow: wf, State: lifecycle.Review, Time: t0},
		"draft":                 {Workflow: wf, State: lifecycle.Draft, Sequence: 1, Time: t0},
		"previous on the first": {Workflow: wf, State: lifecycle.Review, Sequence: 1, Previous: other, Time: t0},
	} {
		if _, err := ev.Marshal(); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := (lifecycle.Approval{Workflow: wf, Request: other, Decision: "maybe", Time: t0}).Marshal(); !errors.Is(err, errdef.ErrInvalid) {
		t.Errorf("approval: %v", err)
	}
}
