package bpflsm

// The objects are committed (a plain go build needs no clang); make bpf
// regenerates them after a change to c/ptrace.bpf.c or c/types.h (the C
// sources live apart: the go tool refuses C files in a package that does
// not use cgo).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -go-package bpflsm -output-stem ptrace -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" ptrace c/ptrace.bpf.c -- -Ic
