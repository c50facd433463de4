package registryext

import (
	"context"
	"sync"

	"github.com/opencontainers/go-digest"
)

// requestState is what the middleware tells wrapDistribution about one request.
type requestState struct {
	mu      sync.Mutex
	denial  *Denial
	subject digest.Digest // of a manifest stored with a subject
	tagged  string        // tag@digest the middleware's Put tagged
	actor   string        // the user Distribution authenticated
	// types are the predicate types of the attestations a manifest PUT
	// adds, for the audit log.
	types []string
	// pull is set for a manifest GET, which the lifecycle pull rule
	// applies to.
	pull bool
	// granted is a restricted pull allowed to a named reader, for the
	// audit log.
	granted *Denial
	// unavailable is a write refused because coordination failed, which
	// Distribution answers a delete by digest with a generic 500.
	unavailable error
}

type stateKey struct{}

// stateOf returns the state of the request ctx belongs to, or nil.
// Distribution derives its handler contexts from the request's.
func stateOf(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

func (s *requestState) setDenial(d Denial) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.denial == nil {
		s.denial = &d
	}
}

func (s *requestState) setSubject(d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subject = d
}

// distributionUserName is the context key under which Distribution's
// handlers put the authenticated user's name (registry/handlers).
const distributionUserName = "auth.user.name"

// noteUser records the user Distribution authenticated, from a context it
// derived for the request.
func (s *requestState) noteUser(ctx context.Context) {
	name, _ := ctx.Value(distributionUserName).(string)
	if name == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actor = name
}

func (s *requestState) user() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actor
}

func (s *requestState) setTagged(tag string, d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tagged = tag + "@" + d.String()
}

func (s *requestState) alreadyTagged(tag string, d digest.Digest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tagged == tag+"@"+d.String()
}

func (s *requestState) subjectOf() digest.Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subject
}

func (s *requestState) setUnavailable(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unavailable == nil {
		s.unavailable = err
	}
}

func (s *requestState) unavailableErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unavailable
}

func (s *requestState) denied() *Denial {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.denial
}

func (s *requestState) setPredicateTypes(types []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.types = types
}

func (s *requestState) predicateTypes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.types
}

func (s *requestState) setGranted(d Denial) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.granted = &d
}

func (s *requestState) grantedRead() *Denial {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.granted
}

func (s *requestState) isPull() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pull
}
