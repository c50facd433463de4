package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	urlpkg "net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/opencontainers/go-digest"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/trust"
)

const (
	ksIssuer = "https://token.actions.githubusercontent.com"
	ksSAN    = "https://github.com/acme/workflows/.github/workflows/release.yml@refs/heads/main"
)

// ks is an offline Sigstore: sigstore-go's VirtualSigstore (its CA, Rekor
// and TSA), plus a CA and TSA of our own, made with crypto/x509, that can
// issue certificates in the past and with GitHub workflow claims (the
// VirtualSigstore's intermediate key is unexported and its leaves start
// now). One trusted_root.json trusts both.
type ks struct {
	vs              *ca.VirtualSigstore
	now             time.Time
	rootCert, inter *x509.Certificate
	interKey        *ecdsa.PrivateKey
	tsaLeaf         *x509.Certificate
	tsaKey          *ecdsa.PrivateKey
	trustedRoot     []byte
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mkCert(t *testing.T, tmpl, parent *x509.Certificate, pub any, priv crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func derString(t *testing.T, s string) []byte {
	t.Helper()
	b, err := asn1.MarshalWithParams(s, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newKS(t *testing.T) *ks {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	k := &ks{vs: vs, now: now, interKey: ecKey(t), tsaKey: ecKey(t)}
	rootKey := ecKey(t)
	caTmpl := func(n int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-5 * time.Hour), NotAfter: now.Add(5 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	rt := caTmpl(1, "root")
	k.rootCert = mkCert(t, rt, rt, rootKey.Public(), rootKey)
	it := caTmpl(2, "fulcio-intermediate")
	it.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	k.inter = mkCert(t, it, k.rootCert, k.interKey.Public(), rootKey)
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		t.Fatal(err)
	}
	k.tsaLeaf = mkCert(t, &x509.Certificate{SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "tsa"}, NotBefore: now.Add(-5 * time.Hour), NotAfter: now.Add(5 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}}}, k.rootCert, k.tsaKey.Public(), rootKey)

	// The VirtualSigstore's logs carry the hex log ID as their ID bytes;
	// a trusted_root.json holds the raw key ID.
	logs := func(m map[string]*root.TransparencyLog) map[string]*root.TransparencyLog {
		out := map[string]*root.TransparencyLog{}
		for id, tl := range m {
			c := *tl
			if c.ID, err = hex.DecodeString(id); err != nil {
				t.Fatal(err)
			}
			out[id] = &c
		}
		return out
	}
	cas := append(vs.FulcioCertificateAuthorities(), &root.FulcioCertificateAuthority{Root: k.rootCert, Intermediates: []*x509.Certificate{k.inter},
		ValidityPeriodStart: now.Add(-5 * time.Hour), ValidityPeriodEnd: now.Add(5 * time.Hour), URI: "https://fulcio.test"})
	tsas := append(vs.TimestampingAuthorities(), &root.SigstoreTimestampingAuthority{Root: k.rootCert, Leaf: k.tsaLeaf,
		ValidityPeriodStart: now.Add(-5 * time.Hour), ValidityPeriodEnd: now.Add(5 * time.Hour), URI: "https://tsa.test"})
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, cas, logs(vs.CTLogs()), tsas, logs(vs.RekorLogs()))
	if err != nil {
		t.Fatal(err)
	}
	if k.trustedRoot, err = tr.MarshalJSON(); err != nil {
		t.Fatal(err)
	}
	return k
}

// statement is a cosign sign/v1 statement about d.
func statement(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": map[string]any{},
		"subject": []any{map[string]any{"digest": map[string]string{"sha256": d.Encoded()}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tlogEntry completes a VirtualSigstore log entry as a v0.3 bundle needs
// it: kind and version, and a signed entry timestamp.
func (k *ks) tlogEntry(t *testing.T, e *tlog.Entry) *protorekor.TransparencyLogEntry {
	t.Helper()
	tle := e.TransparencyLogEntry()
	tle.KindVersion = &protorekor.KindVersion{Kind: "intoto", Version: "0.0.2"}
	logID, err := k.vs.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	set, err := k.vs.RekorSignPayload(tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(tle.CanonicalizedBody), IntegratedTime: tle.IntegratedTime, LogIndex: tle.LogIndex, LogID: logID})
	if err != nil {
		t.Fatal(err)
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	return tle
}

// pack serialises a v0.3 bundle and parses it back, as a registry
// reader would.
func pack(t *testing.T, cert []byte, tle *protorekor.TransparencyLogEntry, tsr []byte, env *ssldsse.Envelope) *bundle.Bundle {
	t.Helper()
	vm := &protobundle.VerificationMaterial{Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: cert}}}
	if tle != nil {
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{tle}
	}
	if tsr != nil {
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: tsr}}}
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := protojson.Marshal(&protobundle.Bundle{MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{Payload: payload, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: sig}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	return &b
}

// virtualBundle is a keyless bundle made by the VirtualSigstore: a fresh
// leaf for san and issuer, a Rekor entry (kept when withTlog) and a TSA
// timestamp (kept when withTSA).
func (k *ks) virtualBundle(t *testing.T, d digest.Digest, san, issuer string, withTlog, withTSA bool) *bundle.Bundle {
	t.Helper()
	ent, err := k.vs.AttestAtTime(san, issuer, statement(t, d), k.now.Add(time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	vc, err := ent.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	var tle *protorekor.TransparencyLogEntry
	if withTlog {
		tles, err := ent.TlogEntries()
		if err != nil {
			t.Fatal(err)
		}
		tle = k.tlogEntry(t, tles[0])
	}
	var tsr []byte
	if withTSA {
		tss, err := ent.Timestamps()
		if err != nil {
			t.Fatal(err)
		}
		tsr = tss[0]
	}
	return pack(t, vc.Certificate().Raw, tle, tsr, sc.EnvelopeContent().RawEnvelope())
}

// leaf describes a certificate of our own CA and when it was used.
type leaf struct {
	san, issuer      string
	from, to         time.Time
	githubRepository string // deprecated OID .1.5, raw string
	sourceRepository string // OID .1.12, DER UTF8String
	tlogAt, tsaAt    time.Time
}

// ownBundle is a keyless bundle from our own CA: l's certificate, a Rekor
// entry at l.tlogAt and a TSA timestamp at l.tsaAt (each left out when
// zero).
func (k *ks) ownBundle(t *testing.T, d digest.Digest, l leaf) *bundle.Bundle {
	t.Helper()
	leafKey := ecKey(t)
	exts := []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}, Value: derString(t, l.issuer)}}
	if l.githubRepository != "" {
		exts = append(exts, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 5}, Value: []byte(l.githubRepository)})
	}
	if l.sourceRepository != "" {
		exts = append(exts, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 12}, Value: derString(t, l.sourceRepository)})
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: l.from, NotAfter: l.to,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, ExtraExtensions: exts}
	if u, err := urlOrEmail(l.san); err == nil && u != nil {
		tmpl.URIs = append(tmpl.URIs, u)
	} else {
		tmpl.EmailAddresses = []string{l.san}
	}
	cert := mkCert(t, tmpl, k.inter, leafKey.Public(), k.interKey)
	sv, err := signature.LoadECDSASignerVerifier(leafKey, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	es, err := ssldsse.NewEnvelopeSigner(&sigdsse.SignerAdapter{SignatureSigner: sv, Pub: &leafKey.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), "application/vnd.in-toto+json", statement(t, d))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	var tle *protorekor.TransparencyLogEntry
	if !l.tlogAt.IsZero() {
		e, err := k.vs.GenerateTlogEntry(cert, env, sig, l.tlogAt.Unix(), true)
		if err != nil {
			t.Fatal(err)
		}
		tle = k.tlogEntry(t, e)
	}
	var tsr []byte
	if !l.tsaAt.IsZero() {
		q, err := timestamp.CreateRequest(bytes.NewReader(sig), &timestamp.RequestOptions{Hash: crypto.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		req, err := timestamp.ParseRequest(q)
		if err != nil {
			t.Fatal(err)
		}
		ts := &timestamp.Timestamp{HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage, Time: l.tsaAt, Policy: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2}}
		if tsr, err = ts.CreateResponseWithOpts(k.tsaLeaf, k.tsaKey, crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	return pack(t, cert.Raw, tle, tsr, env)
}

// policySigner writes the trusted root and a policy naming it by a
// relative path into a directory, loads the policy with trust.Load, and
// returns its keyless signer.
func (k *ks) policySigner(t *testing.T, keyless string) trust.Signer {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sigstore"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sigstore", "trusted_root.json"), k.trustedRoot, 0o600); err != nil {
		t.Fatal(err)
	}
	src := "version: ociwf.dev/trust/v1\ntrustPolicies:\n  - name: a\n    registryScopes: ['*']\n    signers:\n      - name: ci\n        keyless: {trustedRoot: sigstore/trusted_root.json, " + keyless + "}\n"
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := trust.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return p.TrustPolicies[0].Signers[0]
}

func TestVerifyKeyless(t *testing.T) {
	k := newKS(t)
	d := digest.FromString("manifest")
	other := digest.FromString("another manifest")
	now := k.now
	expired := leaf{san: ksSAN, issuer: ksIssuer, from: now.Add(-time.Hour), to: now.Add(-50 * time.Minute)}
	withTSA := func(l leaf, at time.Time) leaf { l.tsaAt = at; return l }
	withTlog := func(l leaf, at time.Time) leaf { l.tlogAt = at; return l }
	claimed := leaf{san: ksSAN, issuer: ksIssuer, from: now.Add(-time.Minute), to: now.Add(10 * time.Minute), tlogAt: now,
		githubRepository: "acme/workflows", sourceRepository: "https://github.com/acme/workflows"}
	exact := "identity: " + ksSAN + ", issuer: " + ksIssuer
	cases := []struct {
		name    string
		bundle  *bundle.Bundle
		digest  digest.Digest
		keyless string
		want    string // "" accepts
	}{
		{"accepted identity", k.virtualBundle(t, d, ksSAN, ksIssuer, true, true), d, exact, ""},
		{"accepted, tlog and signed timestamp required", k.virtualBundle(t, d, ksSAN, ksIssuer, true, true), d, exact + ", timestamps: {signed: 1}", ""},
		{"wrong identity", k.virtualBundle(t, d, "https://github.com/evil/workflows/.github/workflows/release.yml@refs/heads/main", ksIssuer, true, true), d, exact, "expected SAN value"},
		{"wrong issuer", k.virtualBundle(t, d, ksSAN, "https://issuer.evil.example", true, true), d, exact, "expected issuer value"},
		{"another digest", k.virtualBundle(t, other, ksSAN, ksIssuer, true, true), d, exact, "artifact digest"},
		{"identity regexp accepted", k.virtualBundle(t, d, ksSAN, ksIssuer, true, true), d, `identityRegexp: '^https://github\.com/acme/', issuerRegexp: '^https://token\.actions\.githubusercontent\.com$'`, ""},
		{"identity regexp rejected", k.virtualBundle(t, d, "https://github.com/acme-evil/workflows/.github/workflows/release.yml@refs/heads/main", ksIssuer, true, true), d, `identityRegexp: '^https://github\.com/acme/', issuer: ` + ksIssuer, "expected SAN value to match regex"},
		{"issuer regexp rejected", k.virtualBundle(t, d, ksSAN, "https://token.actions.githubusercontent.com.evil.example", true, true), d, `identity: ` + ksSAN + `, issuerRegexp: '^https://token\.actions\.githubusercontent\.com$'`, "expected issuer value to match regex"},
		{"missing tlog entry, tlog required", k.virtualBundle(t, d, ksSAN, ksIssuer, false, true), d, exact + ", timestamps: {signed: 1}", "not enough verified log entries"},
		{"missing tlog entry, not required, signed timestamp", k.virtualBundle(t, d, ksSAN, ksIssuer, false, true), d, exact + ", tlog: {required: false}, timestamps: {signed: 1}", ""},
		{"tlog threshold above the entries", k.virtualBundle(t, d, ksSAN, ksIssuer, true, true), d, exact + ", tlog: {threshold: 2}", "not enough verified log entries"},
		{"signed timestamp required, none", k.virtualBundle(t, d, ksSAN, ksIssuer, true, false), d, exact + ", timestamps: {signed: 1}", "signed timestamp"},
		{"expired, signed timestamp inside validity", k.ownBundle(t, d, withTSA(expired, now.Add(-55*time.Minute))), d, exact + ", tlog: {required: false}, timestamps: {signed: 1}", ""},
		{"expired, tlog time inside validity", k.ownBundle(t, d, withTlog(expired, now.Add(-55*time.Minute))), d, exact, ""},
		{"expired, signed timestamp now", k.ownBundle(t, d, withTSA(expired, now)), d, exact + ", tlog: {required: false}, timestamps: {signed: 1}", "leaf certificate verification failed"},
		{"expired, no timestamp", k.ownBundle(t, d, expired), d, exact + ", tlog: {required: false}, timestamps: {signed: 1}", "timestamp"},
		{"expired, signed timestamp, tlog required and missing", k.ownBundle(t, d, withTSA(expired, now.Add(-55*time.Minute))), d, exact + ", timestamps: {signed: 1}", "not enough verified log entries"},
		{"claims accepted", k.ownBundle(t, d, claimed), d, exact + ", claims: {githubWorkflowRepository: acme/workflows, sourceRepositoryURI: 'https://github.com/acme/workflows'}", ""},
		{"github workflow repository mismatch", k.ownBundle(t, d, claimed), d, exact + ", claims: {githubWorkflowRepository: acme/other}", "expected GithubWorkflowRepository"},
		{"source repository mismatch", k.ownBundle(t, d, claimed), d, exact + ", claims: {sourceRepositoryURI: 'https://github.com/acme/other'}", "expected SourceRepositoryURI"},
		{"claim the certificate lacks", k.ownBundle(t, d, claimed), d, exact + ", claims: {githubWorkflowTrigger: push}", "expected GithubWorkflowTrigger"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := k.policySigner(t, c.keyless)
			res, err := verify.VerifyKeyless(context.Background(), c.bundle, c.digest, s)
			if c.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if res.Signer != "ci" || res.Certificate.SubjectAlternativeName != ksSAN || res.Certificate.Issuer != ksIssuer || res.Statement.GetPredicateType() != "https://sigstore.dev/cosign/sign/v1" || res.SignedAt.IsZero() {
					t.Fatalf("result %+v", res)
				}
				return
			}
			var ke *verify.KeylessError
			if err == nil || !errors.As(err, &ke) || ke.Signer != "ci" || !errors.Is(err, errdef.ErrVerification) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("got %v, want a KeylessError for ci naming %q", err, c.want)
			}
		})
	}
}

// The signer's notBefore/notAfter window applies at the verified
// timestamp, not at the verification time.
func TestVerifyKeylessWindow(t *testing.T) {
	k := newKS(t)
	d := digest.FromString("manifest")
	b := k.ownBundle(t, d, leaf{san: ksSAN, issuer: ksIssuer, from: k.now.Add(-time.Hour), to: k.now.Add(-50 * time.Minute), tsaAt: k.now.Add(-55 * time.Minute)})
	s := k.policySigner(t, "identity: "+ksSAN+", issuer: "+ksIssuer+", tlog: {required: false}, timestamps: {signed: 1}")
	cases := []struct {
		name     string
		notAfter time.Time
		ok       bool
	}{
		{"signed inside the window", k.now.Add(-52 * time.Minute), true},
		{"signed after the window", k.now.Add(-58 * time.Minute), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sg := s
			sg.NotAfter = &c.notAfter
			_, err := verify.VerifyKeyless(context.Background(), b, d, sg)
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, errdef.ErrVerification)) {
				t.Fatalf("got %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// Caller mistakes are invalid input, not verification failures.
func TestVerifyKeylessInvalidInput(t *testing.T) {
	k := newKS(t)
	d := digest.FromString("manifest")
	b := k.virtualBundle(t, d, ksSAN, ksIssuer, true, true)
	s := k.policySigner(t, "identity: "+ksSAN+", issuer: "+ksIssuer)
	missing := s
	kl := *s.Keyless
	kl.TrustedRoot = filepath.Join(t.TempDir(), "missing.json")
	missing.Keyless = &kl
	cases := []struct {
		name string
		b    *bundle.Bundle
		d    digest.Digest
		s    trust.Signer
	}{
		{"key signer", b, d, trust.Signer{Name: "k", Key: "k.pub"}},
		{"no bundle", nil, d, s},
		{"not sha256", b, digest.Digest("sha512:" + hex.EncodeToString(make([]byte, 64))), s},
		{"trusted root gone", b, d, missing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := verify.VerifyKeyless(context.Background(), c.b, c.d, c.s)
			if !errors.Is(err, errdef.ErrInvalid) || errors.Is(err, errdef.ErrVerification) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

// urlOrEmail parses a workflow URI SAN; e-mail SANs are not URIs.
func urlOrEmail(san string) (*urlpkg.URL, error) {
	if !bytes.Contains([]byte(san), []byte("://")) {
		return nil, errors.New("not a URI")
	}
	return urlpkg.Parse(san)
}

// A keyless bundle stored as a referrer counts for the keyless signer the
// policy names, through the verifier; another identity does not.
func TestVerifyKeylessBundleInRegistry(t *testing.T) {
	ctx := context.Background()
	k := newKS(t)
	f := newFixture(t, newKeys(t))
	repo := f.host + "/wf/keyless"
	subj := f.release(t, repo+":1.4.0", recipe{unsigned: true})
	for _, c := range []struct {
		name, identity string
		ok             bool
	}{
		{"the policy's identity", ksSAN, true},
		{"another identity", "https://github.com/evil/workflows/.github/workflows/release.yml@refs/heads/main", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := k.policySigner(t, "identity: "+c.identity+", issuer: "+ksIssuer)
			pol := &trust.Policy{Version: trust.Version, TrustPolicies: []trust.Scope{{
				Name: "keyless", RegistryScopes: []string{repo}, Signers: []trust.Signer{s},
				SignedIdentity: trust.SignedIdentity{Type: trust.DigestOnly},
			}}}
			v := f.verifier(t, pol, verify.Options{})
			_, rep, _ := v.Verify(ctx, repo+":1.4.0")
			if st := checkStatus(rep, verify.CheckSignatures); st != verify.Fail {
				t.Fatalf("before the bundle is stored: signatures %s, want fail", st)
			}
			b := k.virtualBundle(t, subj.Digest, ksSAN, ksIssuer, true, true)
			raw, err := b.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			f.attach(t, subj, bundleMediaType, bundleMediaType, raw)
			_, rep, _ = v.Verify(ctx, repo+":1.4.0")
			got := checkStatus(rep, verify.CheckSignatures)
			if c.ok && (got != verify.Pass || len(rep.Signers) != 1 || rep.Signers[0] != "ci") {
				t.Fatalf("signatures %s, signers %v; want pass by ci\n%+v", got, rep.Signers, rep.Checks)
			}
			if !c.ok && got != verify.Fail {
				t.Fatalf("a bundle by another identity: signatures %s, want fail", got)
			}
		})
	}
}

const bundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// checkStatus is the status of check name in rep.
func checkStatus(rep *verify.Report, name string) verify.Status {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}
