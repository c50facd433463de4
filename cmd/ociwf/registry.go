package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/policy/registryext"
)

func (a *app) registryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Run ociwf's own OCI registry"}
	var addr, root string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the CNCF Distribution registry with ociwf's extensions",
		Long: `Serve runs the embedded CNCF Distribution registry on --addr (loopback by
default) with filesystem storage under --root. It stops gracefully on
SIGINT or SIGTERM. A health endpoint answers on ` + registryext.HealthPath + `.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level(a.verbose)}))
			registryext.RouteDistributionLogs(log)
			srv, err := registryext.New(cmd.Context(), registryext.Config{Addr: addr, Root: root, Logger: log})
			if err != nil {
				return err
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve() }()
			a.emit(map[string]string{"addr": srv.Addr(), "root": root}, func(w io.Writer) {
				fmt.Fprintf(w, "Serving on http://%s (storage %s)\n", srv.Addr(), root)
			})
			select {
			case err := <-done:
				return err
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				return err
			}
			return <-done
		},
	}
	serve.Flags().StringVar(&addr, "addr", registryext.DefaultAddr, "listen address")
	serve.Flags().StringVar(&root, "root", "./ociwf-registry", "storage directory")
	cmd.AddCommand(serve)
	return cmd
}

func level(verbose bool) slog.Level {
	if verbose {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
