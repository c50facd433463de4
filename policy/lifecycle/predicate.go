package lifecycle

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/opencontainers/go-digest"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"ociwf.dev/ociwf/errdef"
)

// Predicate types of the signed lifecycle facts: in-toto statements whose
// subject is the workflow's manifest digest.
const (
	// EventPredicateType is a lifecycle event: a version entering a
	// state, linked to the event before it.
	EventPredicateType = "https://ociwf.dev/lifecycle/event/v1"
	// ApprovalPredicateType is a reviewer's decision on a review
	// submission or an emergency event.
	ApprovalPredicateType = "https://ociwf.dev/lifecycle/approval/v1"
)

// EventSchema is the JSON Schema of the event predicate.
//
//go:embed event.schema.json
var EventSchema []byte

// ApprovalSchema is the JSON Schema of the approval predicate.
//
//go:embed approval.schema.json
var ApprovalSchema []byte

// MaxPredicateBytes bounds one event or approval predicate.
const MaxPredicateBytes = 256 << 10

// Event is the predicate of a lifecycle event.
type Event struct {
	// Workflow is the version's manifest digest; it must equal the
	// statement's subject.
	Workflow string `json:"workflow"`
	// State is the state entered.
	State State `json:"state"`
	// Previous is the ID of the event before this one; empty for the
	// first link.
	Previous string `json:"previous,omitempty"`
	// Sequence is the event's position in the chain, 1 for the first.
	Sequence int `json:"sequence"`
	// Time is when the event was recorded, as its signer claims it.
	Time time.Time `json:"time"`
	// Actor is who recorded it, as the signer names themselves; the
	// signature, not this field, is what the policy checks.
	Actor string `json:"actor,omitempty"`
	// Reason says why (required for deprecation, retirement and
	// archival).
	Reason string `json:"reason,omitempty"`
	// Replacement is the version to use instead
	// (registry/repository@sha256:...).
	Replacement string `json:"replacement,omitempty"`
	// Emergency, when set, makes this an emergency retirement: it counts
	// only with the approvals of the policy's emergency approver set.
	Emergency *Emergency `json:"emergency,omitempty"`
}

// Emergency documents an emergency retirement, as the immutability policy's
// exception process requires.
type Emergency struct {
	Justification string `json:"justification"`
	Impact        string `json:"impact"`
	Remediation   string `json:"remediation"`
}

// Decision is an approval's outcome.
type Decision string

// Decisions.
const (
	Approve Decision = "approve"
	Reject  Decision = "reject"
)

// Approval is the predicate of a reviewer's decision.
type Approval struct {
	// Workflow is the version's manifest digest; it must equal the
	// statement's subject.
	Workflow string `json:"workflow"`
	// Request is the ID of the event decided on: the review submission,
	// or an emergency retirement.
	Request  string    `json:"request"`
	Decision Decision  `json:"decision"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor,omitempty"`
	Comment  string    `json:"comment,omitempty"`
	// Checklist holds the review checklist's outcomes.
	Checklist []ChecklistItem `json:"checklist,omitempty"`
	// Risk is the reviewer's risk assessment.
	Risk *Risk `json:"risk,omitempty"`
}

// ChecklistItem is one review checklist outcome.
type ChecklistItem struct {
	Item string `json:"item"`
	// Outcome is pass, fail or n/a.
	Outcome string `json:"outcome"`
	Note    string `json:"note,omitempty"`
}

// Risk is a risk assessment.
type Risk struct {
	// Level is low, medium, high or critical.
	Level string `json:"level"`
	Notes string `json:"notes,omitempty"`
}

// Marshal returns the predicate JSON of e after checking it against
// EventSchema.
func (e Event) Marshal() ([]byte, error) { return marshal(e, eventSchema) }

// Encode returns the predicate JSON of e, checked against EventSchema,
// and its ID: what a writer signs and links the next event to.
func (e Event) Encode() (raw []byte, id string, err error) { return encode(e, eventSchema) }

// ID returns the event's ID: "sha256:" and the hex SHA-256 of its
// canonical JSON (RFC 8785).
func (e Event) ID() (string, error) { return id(e) }

// Marshal returns the predicate JSON of a after checking it against
// ApprovalSchema.
func (a Approval) Marshal() ([]byte, error) { return marshal(a, approvalSchema) }

// Encode returns the predicate JSON of a, checked against
// ApprovalSchema, and its ID.
func (a Approval) Encode() (raw []byte, id string, err error) { return encode(a, approvalSchema) }

// ID returns the approval's ID, made as Event.ID.
func (a Approval) ID() (string, error) { return id(a) }

// PredicateError is a predicate that does not decode or breaks its
// schema. It matches errdef.ErrInvalid.
type PredicateError struct {
	Type string
	// Path is a JSON pointer into the predicate.
	Path string
	Msg  string
}

func (e *PredicateError) Error() string {
	if e.Path == "" || e.Path == "/" {
		return fmt.Sprintf("%s predicate: %s", e.Type, e.Msg)
	}
	return fmt.Sprintf("%s predicate: %s: %s", e.Type, e.Path, e.Msg)
}

// Is makes a PredicateError match errdef.ErrInvalid.
func (e *PredicateError) Is(target error) bool { return target == errdef.ErrInvalid }

// DecodeEvent checks an event predicate (the JSON of a statement's
// predicate) against EventSchema and returns it with its ID.
func DecodeEvent(raw []byte) (*Event, string, error) {
	var e Event
	id, err := decode(raw, eventSchema, "event", &e)
	if err != nil {
		return nil, "", err
	}
	return &e, id, nil
}

// DecodeApproval checks an approval predicate against ApprovalSchema and
// returns it with its ID.
func DecodeApproval(raw []byte) (*Approval, string, error) {
	var a Approval
	id, err := decode(raw, approvalSchema, "approval", &a)
	if err != nil {
		return nil, "", err
	}
	return &a, id, nil
}

// ValidID reports whether s has the form of an event or approval ID.
func ValidID(s string) bool {
	d, err := digest.Parse(s)
	return err == nil && d.Algorithm() == digest.SHA256
}

func marshal(v any, schema func() (*jsonschema.Schema, error)) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	name := "event"
	if _, ok := v.(Approval); ok {
		name = "approval"
	}
	if err := validate(raw, schema, name); err != nil {
		return nil, err
	}
	return raw, nil
}

func encode(v any, schema func() (*jsonschema.Schema, error)) ([]byte, string, error) {
	raw, err := marshal(v, schema)
	if err != nil {
		return nil, "", err
	}
	id, err := idOf(raw)
	if err != nil {
		return nil, "", err
	}
	return raw, id, nil
}

func id(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return idOf(raw)
}

// idOf hashes the canonical form of a JSON document, so that the same
// predicate has one ID however a signer's tool laid its bytes out.
func idOf(raw []byte) (string, error) {
	c, err := jsoncanonicalizer.Transform(raw)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func decode(raw []byte, schema func() (*jsonschema.Schema, error), name string, out any) (string, error) {
	if len(raw) > MaxPredicateBytes {
		return "", fmt.Errorf("%w: %w", &PredicateError{Type: name, Msg: fmt.Sprintf("larger than %d bytes", MaxPredicateBytes)}, errdef.ErrTooLarge)
	}
	// RFC 8785 hashes I-JSON, which is UTF-8: the decoder would replace
	// invalid bytes with U+FFFD while the ID hashed them as they are.
	if !utf8.Valid(raw) {
		return "", &PredicateError{Type: name, Msg: "not valid UTF-8"}
	}
	if err := validate(raw, schema, name); err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return "", &PredicateError{Type: name, Msg: err.Error()}
	}
	id, err := idOf(raw)
	if err != nil {
		return "", &PredicateError{Type: name, Msg: err.Error()}
	}
	// A verifier decodes the predicate into a generic value and encodes it
	// again; that must hash alike. An unpaired surrogate escape (\ud800)
	// decodes to U+FFFD, which the ID did not hash: not I-JSON.
	var generic any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&generic); err != nil {
		return "", &PredicateError{Type: name, Msg: err.Error()}
	}
	again, err := json.Marshal(generic)
	if err != nil {
		return "", &PredicateError{Type: name, Msg: err.Error()}
	}
	if rid, err := idOf(again); err != nil || rid != id {
		return "", &PredicateError{Type: name, Msg: "not I-JSON: a string holds an unpaired surrogate escape or another sequence that does not decode as it was written"}
	}
	return id, nil
}

func validate(raw []byte, schema func() (*jsonschema.Schema, error), name string) error {
	sch, err := schema()
	if err != nil {
		return fmt.Errorf("%s schema: %w", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return &PredicateError{Type: name, Msg: err.Error()}
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return &PredicateError{Type: name, Msg: err.Error()}
		}
		for len(ve.Causes) > 0 {
			ve = ve.Causes[0]
		}
		msg := ve.ErrorKind.LocalizedString(message.NewPrinter(language.English))
		if _, ok := ve.ErrorKind.(*kind.FalseSchema); ok {
			msg = "not allowed here"
		}
		return &PredicateError{Type: name, Path: "/" + strings.Join(ve.InstanceLocation, "/"), Msg: msg}
	}
	return nil
}

// The schemas compile on first use, not at program start.
var (
	eventSchema    = sync.OnceValues(func() (*jsonschema.Schema, error) { return compile("event.schema.json", EventSchema) })
	approvalSchema = sync.OnceValues(func() (*jsonschema.Schema, error) { return compile("approval.schema.json", ApprovalSchema) })
)

func compile(name string, src []byte) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	if err := c.AddResource(name, doc); err != nil {
		return nil, err
	}
	return c.Compile(name)
}
