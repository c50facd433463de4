package lifecycle_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"ociwf.dev/policy/lifecycle"
)

// The seed corpora are under testdata/fuzz/<FuzzName>; go test runs them.

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"workflow":"` + wf + `","state":"review","sequence":1,"time":"2026-03-01T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, id, err := lifecycle.DecodeEvent(raw)
		if err != nil {
			if e != nil || id != "" {
				t.Fatalf("an error with a result: %v", err)
			}
			var pe *lifecycle.PredicateError
			if !errors.As(err, &pe) {
				t.Fatalf("not a *PredicateError: %v", err)
			}
			return
		}
		if !lifecycle.ValidID(id) || !e.State.Valid() || lifecycle.RoleFor(e.State) == "" || e.Sequence < 1 || (e.Sequence == 1) != (e.Previous == "") {
			t.Fatalf("accepted %+v (%s) from %q", e, id, raw)
		}
		// A verifier decodes a statement's predicate into a generic value
		// and encodes it again: that has the ID the signed bytes have.
		var generic any
		if err := json.Unmarshal(raw, &generic); err != nil {
			t.Fatalf("accepted %q, which does not unmarshal: %v", raw, err)
		}
		reenc, _ := json.Marshal(generic)
		if _, rid, err := lifecycle.DecodeEvent(reenc); err != nil || rid != id {
			t.Fatalf("re-encoded through a generic value, %q has ID %s (%v), want %s", reenc, rid, err, id)
		}
		// What decodes re-encodes to something that decodes again.
		again, err := e.Marshal()
		if err != nil {
			t.Fatalf("decoded %q, but Marshal refuses it: %v", raw, err)
		}
		e2, id2, err := lifecycle.DecodeEvent(again)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", again, err)
		}
		if mid, _ := e.ID(); mid != id2 || e2.Sequence != e.Sequence || e2.State != e.State {
			t.Fatalf("ID of the re-encoded event %s, Event.ID %s", id2, mid)
		}
	})
}

func FuzzDecodeApproval(f *testing.F) {
	f.Add([]byte(`{"workflow":"` + wf + `","request":"` + other + `","decision":"approve","time":"2026-03-01T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, id, err := lifecycle.DecodeApproval(raw)
		if err != nil {
			var pe *lifecycle.PredicateError
			if a != nil || id != "" || !errors.As(err, &pe) {
				t.Fatalf("error %v with %v %q", err, a, id)
			}
			return
		}
		if !lifecycle.ValidID(id) || (a.Decision != lifecycle.Approve && a.Decision != lifecycle.Reject) {
			t.Fatalf("accepted %+v from %q", a, raw)
		}
		again, err := a.Marshal()
		if err != nil {
			t.Fatalf("decoded %q, but Marshal refuses it: %v", raw, err)
		}
		if _, id2, err := lifecycle.DecodeApproval(again); err != nil {
			t.Fatalf("re-encoded %q: %v", again, err)
		} else if mid, _ := a.ID(); mid != id2 {
			t.Fatalf("ID %s, Approval.ID %s", id2, mid)
		}
	})
}

// FuzzEvaluate builds a chain of events and approvals from the input,
// four bytes per fact, and evaluates it under the test policy: it must
// not panic, and what it accepts must be one ordered chain.
//
// An event's bytes choose its state, its predecessor (none, or one of the
// facts before it), its signers, and whether it is an emergency; its
// sequence and time follow the predecessor's unless the bytes skew them.
// An approval's bytes choose the fact decided, the decision and signers.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{}, false, uint8(0))
	f.Add([]byte{0x00, 0x00, 0x01, 0x00, 0x80, 0x01, 0x12, 0x00, 0x80, 0x01, 0x23, 0x00, 0x01, 0x02, 0x41, 0x00}, true, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, signed bool, policy uint8) {
		signers := []string{"alice", "bob", "carol", "dave", "rm", "sec1", "sec2", "mallory"}
		states := []lifecycle.State{lifecycle.Review, lifecycle.Published, lifecycle.Deprecated, lifecycle.Retired, lifecycle.Archived}
		r := roles()
		switch policy % 3 {
		case 1:
			r = open()
		case 2:
			r.Approve.Threshold = 1
			r.Emergency = lifecycle.Quorum{}
		}
		in := lifecycle.Input{Workflow: wf, Roles: r, Signers: []string{"alice"}, Signed: signed}
		type fact struct {
			id  string
			ev  *lifecycle.Event
			seq int
			at  time.Time
		}
		var facts []fact
		for i := 0; i+4 <= len(data) && len(facts) < 64; i += 4 {
			b := data[i : i+4]
			who := []string{signers[int(b[2]&7)]}
			if b[2]&8 != 0 {
				who = append(who, signers[int(b[2]>>4)&7])
			}
			var prev *fact
			if n := int(b[1] & 0x7f); n > 0 && len(facts) > 0 {
				prev = &facts[(n-1)%len(facts)]
			}
			if b[0]&0x80 != 0 { // an approval
				a := lifecycle.Approval{Workflow: wf, Decision: lifecycle.Approve, Time: t0}
				if b[0]&1 != 0 {
					a.Decision = lifecycle.Reject
				}
				if prev != nil {
					a.Request, a.Time = prev.id, prev.at.Add(time.Second)
				} else {
					a.Request = other
				}
				if b[0]&2 != 0 {
					a.Workflow = other
				}
				id, err := a.ID()
				if err != nil {
					t.Fatal(err)
				}
				in.Approvals = append(in.Approvals, lifecycle.Signed[lifecycle.Approval]{Value: a, ID: id, Signers: who})
				facts = append(facts, fact{id: id, seq: 0, at: a.Time})
				continue
			}
			ev := lifecycle.Event{Workflow: wf, State: states[int(b[0])%len(states)], Sequence: 1, Time: t0, Reason: "r"}
			if prev != nil && prev.ev != nil {
				ev.Previous, ev.Sequence, ev.Time = prev.id, prev.seq+1, prev.at.Add(time.Minute)
			}
			if b[3]&1 != 0 {
				ev.Sequence += int(b[3]>>1) % 3
			}
			if b[3]&8 != 0 {
				ev.Time = ev.Time.Add(-time.Duration(b[3]>>4) * time.Hour)
			}
			if b[1]&0x80 != 0 {
				ev.Emergency = &lifecycle.Emergency{Justification: "j", Impact: "i", Remediation: "r"}
			}
			if b[3]&4 != 0 {
				ev.Actor = "copy" // another ID for the same transition
			}
			id, err := ev.ID()
			if err != nil {
				t.Fatal(err)
			}
			in.Events = append(in.Events, lifecycle.Signed[lifecycle.Event]{Value: ev, ID: id, Signers: who})
			facts = append(facts, fact{id: id, ev: &ev, seq: ev.Sequence, at: ev.Time})
		}
		st, err := lifecycle.Evaluate(in)
		if st == nil {
			t.Fatalf("no status (err %v)", err)
		}
		if err != nil {
			var ce *lifecycle.ChainError
			if !errors.As(err, &ce) || !slices.Contains([]string{"fork", "broken link", "order", "transition", "unapproved"}, ce.Problem) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !st.State.Valid() {
			t.Fatalf("state %q", st.State)
		}
		for i, l := range st.Chain {
			if l.Event.Sequence != i+1 || (i == 0) != (l.Event.Previous == "") || (i > 0 && l.Event.Previous != st.Chain[i-1].ID) {
				t.Fatalf("link %d: %+v", i, l)
			}
			if i > 0 && l.Event.Time.Before(st.Chain[i-1].Event.Time) {
				t.Fatalf("link %d dated before its predecessor", i)
			}
		}
		if st.Implicit && len(st.Chain) > 0 {
			t.Fatal("implicit with events")
		}
		if st.State.Executable() && r.Approve.Threshold > 0 && !slices.ContainsFunc(st.Chain, func(l lifecycle.Link) bool { return l.Event.State == lifecycle.Published }) {
			t.Fatalf("%s without a publication under an approval policy", st.State)
		}
		if err := lifecycle.CheckRollback(st.Head(), st); err != nil {
			t.Fatalf("its own head: %v", err)
		}
	})
}
