package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/registryext"
)

func (a *app) registryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Run ociwf's own OCI registry"}
	var addr, root, config, rulesFile, auditLog, metricsAddr string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the CNCF Distribution registry with ociwf's extensions",
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
--metrics-addr serves Prometheus metrics on /metrics.

It stops gracefully on SIGINT or SIGTERM. A health endpoint answers on ` + registryext.HealthPath + `.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level(a.verbose)}))
			registryext.RouteDistributionLogs(log)
			cfg, err := storageConfig(cmd, root, config, rulesFile)
			if err != nil {
				return err
			}
			cfg.Addr, cfg.Logger, cfg.AuditLog, cfg.MetricsAddr = addr, log, auditLog, metricsAddr
			root = cfg.Root
			srv, err := registryext.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve() }()
			scheme := "http"
			if srv.TLS() {
				scheme = "https"
			}
			a.emit(map[string]string{"addr": srv.Addr(), "net": srv.Network(), "scheme": scheme, "root": root, "metrics": srv.MetricsAddr()}, func(w io.Writer) {
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
	cmd.AddCommand(serve, a.registryGCCmd())
	return cmd
}

func (a *app) registryGCCmd() *cobra.Command {
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
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := storageConfig(cmd, root, config, rulesFile)
			if err != nil {
				return err
			}
			cfg.Logger = a.logger()
			res, err := registryext.GarbageCollect(cmd.Context(), cfg, opts)
			if err != nil {
				return err
			}
			a.emit(res, func(w io.Writer) {
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
			return cfg, usagef("--root and --config are mutually exclusive: set the storage in the configuration file")
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

func level(verbose bool) slog.Level {
	if verbose {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
