package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/client"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// socketFlag adds --socket to a client command.
func socketFlag(cmd *cobra.Command, socket *string) {
	cmd.Flags().StringVar(socket, "socket", "", "broker socket (default $"+client.SocketEnv+", else "+client.DefaultSocket+")")
}

// clientError maps a client error to an exit status: 1 for a denial or a
// missing process, 2 when the broker cannot be reached or refuses the
// request.
func clientError(cmd string, err error) error {
	var ie *client.ItemError
	var ae *client.APIError
	switch {
	case errors.As(err, &ie):
		return &exitError{1, fmt.Errorf("%s: %w", cmd, err)}
	case errors.As(err, &ae):
		return &exitError{2, fmt.Errorf("%s: %w", cmd, err)}
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return &exitError{2, fmt.Errorf("%s: %w; %v", cmd, err, errNoBroker)}
	}
	return &exitError{2, fmt.Errorf("%s: %w", cmd, err)}
}
