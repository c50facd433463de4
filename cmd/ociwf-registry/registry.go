package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/trust"
)

func (a *app) serveCmd() *cobra.Command {
	var addr, root, config, rulesFile, auditLog, metricsAddr, alertWebhook, coordination string
	serve := &cobra.Command{
		Use:         "serve",
		Annotations: map[string]string{cli.LongRunning: "true"},
		Short:       "Serve the CNCF Distribution registry with ociwf's extensions",
		Long: `Serve runs the embedded CNCF Distribution registry with filesystem storage
under --root, or with everything a Distribution configuration file (--config)
sets up: storage drivers (S3, GCS, Azure, ...), auth (htpasswd, token) and
every http option (addr, net, tls with client certificates, prefix, headers,
http2, h2c, draintimeout). It listens on --addr if given, else on the
configuration's http.addr, else on ` + registryext.DefaultAddr + ` (loopback).
Abandoned uploads are purged as Distribution does (older than 168h, daily);
slow or stalled request bodies are cut off (docs/registry.md).

ociwf's repository middleware enforces tag immutability on the server: by
default every semantic-version tag (v?MAJOR.MINOR.PATCH[-pre][+build]) is
immutable and cosign's signature and attestation tags are append-only;
--rules FILE sets other rules (docs/registry.md). Refused requests get 403
DENIED naming the tag, its digest and the rule. --audit-log appends every
mutating request to a hash-chained log (check it with ociwf audit verify);
--metrics-addr serves Prometheus metrics on /metrics. Every refused request
raises an alert: a WARN log line "access denied" and
ociwf_registry_alerts_total; --alert-webhook URL (or ociwf.alerts.webhook in
--config) also POSTs it there as an Alertmanager v2 alert (OciwfAccessDenied),
asynchronously and retried.

Several replicas may serve one storage when they share a coordination mode
(--coordination, or ociwf.coordination in --config): filesystem takes flock(2)
locks under the storage root (replicas on one host or on a filesystem whose
flock works across hosts), redis takes leases in the Redis that
ociwf.coordination.redis names. Each replica then needs its own --audit-log;
ociwf audit verify checks the set together (docs/registry.md).

It stops gracefully on SIGINT or SIGTERM. A health endpoint answers on ` + registryext.HealthPath + `.`,
		Example: `  ociwf-registry serve --addr 127.0.0.1:5000 --root ./ociwf-registry
  ociwf-registry serve --config distribution.yml --rules rules.yaml --audit-log audit.jsonl --metrics-addr 127.0.0.1:9090
  ociwf-registry serve --config distribution.yml --coordination redis --audit-log replica-a.jsonl`,
		Args: cli.Args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(a.Stderr, &slog.HandlerOptions{Level: a.Level()}))
			registryext.RouteDistributionLogs(log)
			cfg, err := storageConfig(cmd, root, config, rulesFile)
			if err != nil {
				return err
			}
			cfg.Addr, cfg.Logger, cfg.AuditLog, cfg.MetricsAddr = addr, log, auditLog, metricsAddr
			if coordination != "" {
				// The flag names the mode; the file's other settings stay.
				cfg.Coordination.Mode = coordination
				switch coordination {
				case registryext.CoordinationInProcess, registryext.CoordinationFilesystem, registryext.CoordinationRedis:
				default:
					return cli.Usagef("--coordination %q: modes are %s, %s and %s", coordination, registryext.CoordinationInProcess, registryext.CoordinationFilesystem, registryext.CoordinationRedis)
				}
			}
			if alertWebhook != "" {
				// The flag names the URL; the file's other webhook settings stay.
				hook := registryext.AlertWebhook{}
				if cfg.Alerts.Webhook != nil {
					hook = *cfg.Alerts.Webhook
				}
				hook.URL = alertWebhook
				cfg.Alerts.Webhook = &hook
			}
			root = cfg.Root
			self, err := lifecycleStates(&cfg)
			if err != nil {
				return err
			}
			srv, err := registryext.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := self(srv); err != nil {
				_ = srv.Shutdown(context.Background())
				return err
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve() }()
			scheme := "http"
			if srv.TLS() {
				scheme = "https"
			}
			a.Emit(map[string]string{"addr": srv.Addr(), "net": srv.Network(), "scheme": scheme, "root": root, "metrics": srv.MetricsAddr()}, func(w io.Writer) {
				if srv.Network() == "unix" {
					fmt.Fprintf(w, "Serving on unix:%s (%s, storage %s)\n", srv.Addr(), scheme, storageOf(root, config))
					return
				}
				fmt.Fprintf(w, "Serving on %s://%s (storage %s)\n", scheme, srv.Addr(), storageOf(root, config))
			})
			select {
			case err := <-done:
				return err
			case <-cmd.Context().Done():
			}
			// Shutdown bounds the wait by http.draintimeout (default 30s).
			if err := srv.Shutdown(context.Background()); err != nil {
				return err
			}
			return <-done
		},
	}
	serve.Flags().StringVar(&addr, "addr", "", "listen address (default: http.addr of --config, else "+registryext.DefaultAddr+")")
	serve.Flags().StringVar(&root, "root", "./ociwf-registry", "storage directory")
	serve.Flags().StringVar(&config, "config", "", "Distribution configuration file (storage, auth, TLS)")
	serve.Flags().StringVar(&rulesFile, "rules", "", "immutability rules file (default: semantic-version tags immutable)")
	serve.Flags().StringVar(&auditLog, "audit-log", "", "append every mutating request to this hash-chained JSON Lines file")
	serve.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address")
	serve.Flags().StringVar(&alertWebhook, "alert-webhook", "", "POST an Alertmanager v2 alert for every refused request to this URL (overrides ociwf.alerts.webhook.url)")
	serve.Flags().StringVar(&coordination, "coordination", "", "how replicas on one storage order protected writes: inprocess (one replica), filesystem (flock under the root) or redis (ociwf.coordination.redis in --config) (overrides ociwf.coordination.mode)")
	return serve
}

// lifecycleStates wires the pull rule of an ociwf.lifecycle section: the
// registry asks a verifier under the section's trust policy for the state
// of each version pulled, reading the chain from itself. Its lookups read
// only what the rule leaves readable (tags resolved by HEAD, accessories,
// referrers); with auth configured they authenticate as
// $OCIWF_LIFECYCLE_USERNAME with $OCIWF_LIFECYCLE_PASSWORD. The returned
// function completes the wiring once the server listens.
func lifecycleStates(cfg *registryext.Config) (func(*registryext.Server) error, error) {
	lc := cfg.Lifecycle
	if lc == nil {
		return func(*registryext.Server) error { return nil }, nil
	}
	pol, err := trust.Load(lc.Policy)
	if err != nil {
		return nil, fmt.Errorf("ociwf.lifecycle.policy: %w", err)
	}
	var v atomic.Pointer[verify.Verifier]
	var host atomic.Value
	lc.State = func(ctx context.Context, repo string, dgst digest.Digest) (lifecycle.State, error) {
		vv := v.Load()
		if vv == nil {
			return "", fmt.Errorf("lifecycle states: the registry is still starting")
		}
		return vv.StateOf(host.Load().(string))(ctx, repo, dgst)
	}
	return func(srv *registryext.Server) error {
		if srv.Network() == "unix" {
			return fmt.Errorf("ociwf.lifecycle: the pull rule reads lifecycle states from the registry itself over TCP; it cannot listen on a unix socket: %w", errdef.ErrInvalid)
		}
		opts := target.Options{Username: os.Getenv("OCIWF_LIFECYCLE_USERNAME"), Password: os.Getenv("OCIWF_LIFECYCLE_PASSWORD")}
		addr := srv.Addr()
		if srv.TLS() {
			opts.Insecure = true // the registry talking to itself on its own listener
		} else {
			opts.PlainHTTPHosts = []string{addr}
		}
		o, err := target.New(opts)
		if err != nil {
			return err
		}
		vv, err := verify.New(pol, o, verify.Options{StateStore: lifecycle.NewMemoryStore()})
		if err != nil {
			return fmt.Errorf("ociwf.lifecycle.policy: %w", err)
		}
		host.Store(addr)
		v.Store(vv)
		return nil
	}, nil
}

func (a *app) gcCmd() *cobra.Command {
	var root, config, rulesFile string
	var opts registryext.GCOptions
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove unreferenced content from the registry's storage, keeping what the rules protect",
		Long: `Gc removes the blobs no manifest references from the storage under --root
(or the storage a Distribution configuration file, --config, sets up), with
Distribution's mark and sweep. With --delete-untagged it first deletes the
manifests no tag keeps: a tag keeps the manifest it names, the manifests an
index contains and the referrers (signatures, attestations, SBOMs) of all of
those. Stock "registry garbage-collect --delete-untagged" deletes those
referrers even when a protected tag reaches them: do not run it on storage
ociwf registry serve protects.

Run it while no registry serves the storage, as Distribution requires.
--dry-run reports the counts and deletes nothing.`,
		Example: `  ociwf-registry gc --root ./ociwf-registry --dry-run
  ociwf-registry gc --root ./ociwf-registry --delete-untagged
  ociwf-registry gc --config distribution.yml --rules rules.yaml --delete-untagged`,
		Args: cli.Args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := storageConfig(cmd, root, config, rulesFile)
			if err != nil {
				return err
			}
			cfg.Logger = a.Logger()
			res, err := registryext.GarbageCollect(cmd.Context(), cfg, opts)
			if err != nil {
				return err
			}
			a.Emit(res, func(w io.Writer) {
				verb := "deleted"
				if res.DryRun {
					verb = "would delete"
				}
				fmt.Fprintf(w, "Manifests: %s %d, kept %d (%d protected)\nBlobs: %s %d, kept %d\n",
					verb, res.ManifestsDeleted, res.ManifestsKept, res.ManifestsProtected, verb, res.BlobsDeleted, res.BlobsKept)
			})
			return nil
		},
	}
	gc.Flags().StringVar(&root, "root", "./ociwf-registry", "storage directory")
	gc.Flags().StringVar(&config, "config", "", "Distribution configuration file (storage)")
	gc.Flags().StringVar(&rulesFile, "rules", "", "immutability rules file (default: semantic-version tags immutable)")
	gc.Flags().BoolVarP(&opts.DryRun, "dry-run", "d", false, "report what would be deleted; delete nothing")
	gc.Flags().BoolVarP(&opts.DeleteUntagged, "delete-untagged", "m", false, "delete the manifests no tag keeps")
	return gc
}

// storageConfig is the registry configuration the --root, --config and
// --rules flags of cmd describe.
func storageConfig(cmd *cobra.Command, root, config, rulesFile string) (registryext.Config, error) {
	cfg := registryext.Config{Root: root}
	if config != "" {
		if cmd.Flags().Changed("root") {
			return cfg, cli.Usagef("--root and --config are mutually exclusive: set the storage in the configuration file")
		}
		var err error
		if cfg, err = registryext.LoadConfig(config); err != nil {
			return cfg, err
		}
	}
	if rulesFile != "" {
		rules, err := immutability.Load(rulesFile)
		if err != nil {
			return cfg, err
		}
		cfg.Rules = rules
	}
	return cfg, nil
}

func storageOf(root, config string) string {
	if config != "" {
		return "from " + config
	}
	return root
}
