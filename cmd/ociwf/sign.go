package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/keys"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// signerFlags select the signing key, as cosign's flags do.
type signerFlags struct {
	opts accessory.SignerOptions
}

func (s *signerFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.opts.Key, "key", "", "cosign private key file, or KMS URI (awskms://, gcpkms://, azurekms://, hashivault://)")
	fs.StringVar(&s.opts.Cert, "cert", "", "X.509 certificate of --key to attach to signatures")
	fs.StringVar(&s.opts.CertChain, "cert-chain", "", "PEM certificate chain of --cert")
	fs.BoolVar(&s.opts.Keyless, "keyless", false, "sign with a short-lived Fulcio certificate bound to an OIDC identity instead of --key")
	fs.StringVar(&s.opts.FulcioURL, "fulcio-url", accessory.DefaultFulcioURL, "Fulcio URL for --keyless")
	fs.StringVar(&s.opts.OIDCIssuer, "oidc-issuer", "", "OIDC issuer for --keyless (default Sigstore's)")
	fs.StringVar(&s.opts.OIDCClientID, "oidc-client-id", "", "OIDC client ID for --keyless (default sigstore)")
	fs.StringVar(&s.opts.IDToken, "identity-token", "", "OIDC identity token, or a file holding one, for --keyless")
	fs.BoolVar(&s.opts.TlogUpload, "tlog-upload", false, "record signatures in the Rekor transparency log")
	fs.StringVar(&s.opts.RekorURL, "rekor-url", accessory.DefaultRekorURL, "Rekor URL for --tlog-upload")
}

// check reports flag mistakes as usage errors.
func (s *signerFlags) check() error {
	if err := s.opts.Validate(); err != nil {
		return cli.Usagef("--key KEY (a cosign key file or KMS URI) or --keyless: %w", err)
	}
	return nil
}

// loader returns a function that loads the key.
func (s *signerFlags) loader(a *app) func(context.Context) (*accessory.Signer, error) {
	opts := s.opts
	opts.Pass = a.passFunc()
	return func(ctx context.Context) (*accessory.Signer, error) { return keys.LoadSigner(ctx, opts) }
}

// signer loads the key; the caller closes it.
func (s *signerFlags) signer(ctx context.Context, a *app) (*accessory.Signer, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.loader(a)(ctx)
}

// passFunc reads a key password the way cosign does: COSIGN_PASSWORD, else
// a terminal prompt, else standard input.
func (a *app) passFunc() accessory.PassFunc {
	return func(confirm bool) ([]byte, error) {
		if pw, ok := os.LookupEnv("COSIGN_PASSWORD"); ok {
			return []byte(pw), nil
		}
		if f, ok := a.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return accessory.PassFromTerminal(confirm)
		}
		b, err := io.ReadAll(io.LimitReader(a.Stdin, 1<<16))
		if err != nil {
			return nil, fmt.Errorf("read the key password from stdin (or set COSIGN_PASSWORD): %w", err)
		}
		return b, nil
	}
}

// storage is where and in which format signatures and attestations go.
type storage struct {
	referrers bool
	format    string
}

// storageFlag selects where signatures and attestations go, and their
// format.
func storageFlag(fs *pflag.FlagSet, st *storage) {
	fs.BoolVar(&st.referrers, "referrers", false, "store signatures and attestations as OCI 1.1 referrers instead of cosign's sha256-<hex>.sig/.att tags")
	fs.StringVar(&st.format, "signature-format", "legacy", "legacy (cosign v2's simple-signing and DSSE layers, verified by cosign v2 and v3), bundle (sigstore bundles v0.3 as OCI 1.1 referrers, cosign v3's default) or both")
}

// options are the accessory Registry options st selects.
func (st storage) options(log *slog.Logger) (accessory.RegistryOptions, error) {
	f, err := accessory.ParseFormat(st.format)
	if err != nil {
		return accessory.RegistryOptions{}, cli.UsageError{Err: err}
	}
	mode := accessory.TagScheme
	if st.referrers {
		mode = accessory.Referrers
	}
	return accessory.RegistryOptions{Mode: mode, Format: f, Logger: log}, nil
}

// openSubject opens REF on a registry and resolves it to a digest.
func (a *app) openSubject(ctx context.Context, r *remoteFlags, ref string) (*target.Opener, accessory.Subject, error) {
	o, err := r.opener(a.Stdin)
	if err != nil {
		return nil, accessory.Subject{}, err
	}
	t, err := o.OpenReadOnly(ctx, ref)
	if err != nil {
		return nil, accessory.Subject{}, err
	}
	subj, _, err := accessory.ResolveSubject(ctx, t.Storage, t.Ref)
	if err != nil {
		return nil, accessory.Subject{}, err
	}
	return o, subj, nil
}

// signing opens REF, resolves it to the subject to sign and loads the key;
// the caller closes the signer.
func (a *app) signing(ctx context.Context, r *remoteFlags, s *signerFlags, ref string, st storage) (*accessory.Registry, *accessory.Signer, accessory.Subject, error) {
	ropts, err := st.options(a.Logger())
	if err != nil {
		return nil, nil, accessory.Subject{}, err
	}
	o, subj, err := a.openSubject(ctx, r, ref)
	if err != nil {
		return nil, nil, accessory.Subject{}, err
	}
	signer, err := s.signer(ctx, a)
	if err != nil {
		return nil, nil, accessory.Subject{}, err
	}
	return accessory.NewRegistry(o, ropts), signer, subj, nil
}

// report prints what sign or attest did: "VERB REF[detail] (storage)", or
// "Already verb…" when nothing had to be written.
func (a *app) report(out signResult, verb, detail string) {
	a.Emit(out, func(w io.Writer) {
		if out.Existing {
			verb = "Already " + strings.ToLower(verb)
		}
		fmt.Fprintf(w, "%s %s%s (%s)\n", verb, out.Reference, detail, out.Storage)
	})
}

type signResult struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	Tag       string `json:"tag,omitempty"`
	Storage   string `json:"storage"`
	Existing  bool   `json:"existing"`
	Replaced  int    `json:"replaced,omitempty"`
	Type      string `json:"predicateType,omitempty"`
}

func resultOf(r *accessory.Result) signResult {
	return signResult{Reference: r.Subject.String(), Digest: r.Subject.Digest.String(), Tag: r.Subject.Tag, Storage: r.Mode.String(), Existing: r.Existing, Replaced: r.Replaced}
}

func (a *app) signCmd() *cobra.Command {
	var r remoteFlags
	var s signerFlags
	var st storage
	var annotations []string
	cmd := &cobra.Command{
		Use:   "sign REF",
		Short: "Sign a workflow artifact with cosign's signature format",
		Long: `Sign resolves REF to its manifest digest and signs the digest (never the tag)
in cosign's simple-signing format. The signature is stored where stock cosign
v2 looks for it (the sha256-<hex>.sig tag), or with --referrers as an OCI 1.1
referrer. When REF has a tag, the tag is signed as the annotation
dev.ociwf.tag so that a moved tag is detectable. Signing again with the same
key and annotations writes nothing.

--signature-format bundle (or both) stores the signature (also) as a sigstore
bundle v0.3 referrer, as stock cosign v3 signs; its signed subject annotations
name the repository (dev.ociwf.reference) and the tag. The default, legacy,
is the only format both cosign v2 and v3 verify offline with only --key.

Verify with stock cosign:
  cosign verify --key cosign.pub --insecure-ignore-tlog REPO@sha256:...`,
		Example: `  COSIGN_PASSWORD=... ociwf sign --plain-http --key cosign.key 127.0.0.1:5000/workflows/build:1.0.0`,
		Args:    cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ann, err := parseAnnotations(annotations)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			reg, signer, subj, err := a.signing(ctx, &r, &s, argv[0], st)
			if err != nil {
				return err
			}
			defer signer.Close()
			res, err := reg.Sign(ctx, signer, subj, accessory.SignOptions{Annotations: ann})
			if err != nil {
				return err
			}
			a.report(resultOf(res), "Signed", "")
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&annotations, "annotation", "a", nil, "extra signed annotation KEY=VALUE (repeatable)")
	storageFlag(cmd.Flags(), &st)
	s.register(cmd.Flags())
	r.register(cmd.Flags(), false)
	return cmd
}

func (a *app) attestCmd() *cobra.Command {
	var r remoteFlags
	var s signerFlags
	var st storage
	var replace, appendAtt bool
	var typ, predicate string
	cmd := &cobra.Command{
		Use:   "attest REF",
		Short: "Attach a signed in-toto attestation, as cosign attest does",
		Long: `Attest wraps the predicate in FILE in an in-toto statement whose subject is
REF's manifest digest, signs it as a DSSE envelope and stores it where stock
cosign v2 looks (the sha256-<hex>.att tag), or with --referrers as an OCI 1.1
referrer. --type takes cosign's names (slsaprovenance1, cyclonedx, custom,
spdxjson, ...) or a predicate type URI.

By default an attestation of the same type by the same key is kept and
nothing is written; --replace swaps it for the new one, --append adds the new
one beside it.

--signature-format bundle (or both) stores the attestation (also) as a
sigstore bundle v0.3 referrer, as stock cosign v3 attests.

Verify with stock cosign:
  cosign verify-attestation --key cosign.pub --insecure-ignore-tlog --type cyclonedx REPO@sha256:...`,
		Example: `  ociwf attest --plain-http --key cosign.key --type cyclonedx --predicate sbom.cdx.json 127.0.0.1:5000/workflows/build:1.0.0`,
		Args:    cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if predicate == "" {
				return cli.Usagef("--predicate FILE is required")
			}
			if replace && appendAtt {
				return cli.Usagef("--replace and --append are mutually exclusive")
			}
			uri, err := accessory.PredicateType(typ)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			pred, err := readPredicate(predicate, a.Stdin)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			reg, signer, subj, err := a.signing(ctx, &r, &s, argv[0], st)
			if err != nil {
				return err
			}
			defer signer.Close()
			dup := accessory.KeepExisting
			switch {
			case replace:
				dup = accessory.Replace
			case appendAtt:
				dup = accessory.Append
			}
			res, err := reg.Attest(ctx, signer, subj, accessory.AttestOptions{Type: typ, Predicate: pred, Duplicates: dup})
			if err != nil {
				return err
			}
			out := resultOf(res)
			out.Type = uri
			a.report(out, "Attested", ": "+uri)
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", accessory.TypeCustom, "predicate type: slsaprovenance1, cyclonedx, custom, another cosign type, or a URI")
	cmd.Flags().StringVar(&predicate, "predicate", "", "predicate file (- for stdin)")
	cmd.Flags().BoolVar(&replace, "replace", false, "replace attestations of the same type")
	cmd.Flags().BoolVar(&appendAtt, "append", false, "add the attestation even if one of the same type by the same key exists")
	storageFlag(cmd.Flags(), &st)
	s.register(cmd.Flags())
	r.register(cmd.Flags(), false)
	return cmd
}

// maxPredicate bounds predicate files.
const maxPredicate = 16 << 20

func readPredicate(path string, stdin io.Reader) ([]byte, error) {
	rd := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("predicate: %w", err)
		}
		defer f.Close()
		rd = f
	}
	b, err := io.ReadAll(io.LimitReader(rd, maxPredicate+1))
	if err != nil {
		return nil, fmt.Errorf("predicate %s: %w", path, err)
	}
	if len(b) > maxPredicate {
		return nil, fmt.Errorf("predicate %s is larger than %d bytes: %w", path, maxPredicate, errdef.ErrTooLarge)
	}
	return b, nil
}

func (a *app) keyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "key",
		Short:   "Manage signing keys",
		Example: "  COSIGN_PASSWORD=... ociwf key generate --output-key-prefix release",
	}
	var prefix string
	var force bool
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Generate a cosign-compatible encrypted key pair",
		Long: `Generate writes PREFIX.key (encrypted, mode 0600) and PREFIX.pub in the format
of cosign generate-key-pair; both tools use either key. The password comes
from COSIGN_PASSWORD, a terminal prompt, or standard input.`,
		Example: `  COSIGN_PASSWORD=... ociwf key generate --output-key-prefix release`,
		Args:    cli.Args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			kp, err := accessory.GenerateKeyPair(a.passFunc())
			if err != nil {
				return err
			}
			priv, pub, err := accessory.WriteKeyFiles(prefix, kp, force)
			if errors.Is(err, accessory.ErrKeyExists) {
				return fmt.Errorf("%w (choose another --output-key-prefix or pass --force)", err)
			}
			if err != nil {
				return err
			}
			a.Emit(map[string]string{"privateKey": priv, "publicKey": pub}, func(w io.Writer) {
				fmt.Fprintf(w, "Private key written to %s\nPublic key written to %s\n", priv, pub)
			})
			return nil
		},
	}
	gen.Flags().StringVar(&prefix, "output-key-prefix", "cosign", "write PREFIX.key and PREFIX.pub")
	gen.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	cmd.AddCommand(gen)
	return cmd
}
