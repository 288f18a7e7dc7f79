// SPDX-License-Identifier: GPL-2.0
//
// types.h — the kernel structures ptrace.bpf.c reads, cut to the fields
// it reads. preserve_access_index makes every field access a CO-RE
// relocation: the loader finds each field's offset in the running
// kernel's BTF (/sys/kernel/btf/vmlinux), so one object serves every
// kernel with BTF and the BPF LSM.

#ifndef PROCGATE_TYPES_H
#define PROCGATE_TYPES_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define __core __attribute__((preserve_access_index))

typedef struct { __u32 val; } kuid_t;
typedef struct { __u32 val; } kgid_t;

struct group_info {
	int ngroups;
	kgid_t gid[];
} __core;

// include/linux/capability.h: a u64 from 6.3, __u32 cap[2] before.
typedef struct {
	__u64 val;
} kernel_cap_t;

struct cred {
	kuid_t euid;
	kgid_t egid;
	kernel_cap_t cap_permitted;
	struct group_info *group_info;
} __core;

struct super_block {
	__u32 s_dev;
} __core;

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __core;

struct file {
	struct inode *f_inode;
} __core;

struct mm_struct {
	struct file *exe_file;
} __core;

// kernel/cgroup: a cgroup's kernfs directory (its id is the directory's
// inode number on 64-bit kernels, bpf_get_current_cgroup_id's value).
struct kernfs_node {
	__u64 id;
	const char *name;
} __core;

// include/linux/cgroup-defs.h. ancestors[] (6.0: "cgroup: Replace
// cgroup->ancestor_ids[] with ->ancestors[]") holds the cgroup's
// ancestors by level, the root's first and its own last.
struct cgroup {
	int level;
	struct kernfs_node *kn;
	struct cgroup *ancestors[];
} __core;

struct css_set {
	struct cgroup *dfl_cgrp; // the task's cgroup v2
} __core;

// include/linux/pid.h, include/linux/pid_namespace.h, include/linux/ns_common.h
struct ns_common {
	unsigned int inum;
} __core;

struct pid_namespace {
	struct ns_common ns;
} __core;

struct upid {
	int nr;
	struct pid_namespace *ns;
} __core;

struct pid {
	unsigned int level;
	struct upid numbers[];
} __core;

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	const struct cred *cred;
	struct mm_struct *mm;
	struct css_set *cgroups;
	struct pid *thread_pid;
	char comm[16];
} __core;

#endif
