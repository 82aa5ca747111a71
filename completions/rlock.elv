
use builtin;
use str;

set edit:completion:arg-completer[rlock] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'rlock'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'rlock'= {
            cand -k 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand --key 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand -r 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis-file 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others'
            cand --tls-ca 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots'
            cand --tls-cert 'Client certificate (PEM) for mutual TLS; needs --tls-key'
            cand --tls-key 'The client certificate''s private key (PEM); needs --tls-cert'
            cand --prefix 'Namespace for the lock''s Redis keys'
            cand -t 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --ttl 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --limit 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)'
            cand -w 'How long to wait for a busy lock: a duration, or "forever"'
            cand --wait 'How long to wait for a busy lock: a duration, or "forever"'
            cand -E 'Exit status when the lock is busy'
            cand --conflict-exit-code 'Exit status when the lock is busy'
            cand --kill-signal 'The signal that stops the command when the lease cannot be kept (name or number)'
            cand --kill-after 'Grace between --kill-signal and SIGKILL [default: 5s, or a quarter of the TTL if less]'
            cand --max-time 'Stop the command if it runs longer than this (--kill-signal, then SIGKILL), exit 124'
            cand --min-hold 'Keep the lock at least this long after the command started, even if it finishes sooner'
            cand --jitter 'Sleep a random time in [0, DURATION) before the first attempt, to spread hosts apart'
            cand -c 'Run SHELL COMMAND with sh -c instead of COMMAND'
            cand --command 'Run SHELL COMMAND with sh -c instead of COMMAND'
            cand --tls-insecure 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)'
            cand -s 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand --shared 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand -v 'Say what happens on stderr: acquired, extended, released'
            cand --verbose 'Say what happens on stderr: acquired, extended, released'
            cand -q 'Print no warnings (errors are always printed)'
            cand --quiet 'Print no warnings (errors are always printed)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run a command while holding the lock (what rlock alone does).'
            cand acquire 'Take the lease and print it, for scripts that release it later (rlock release).'
            cand extend 'Extend a lease you hold to a fresh TTL.'
            cand release 'Release a lease you hold (compare-and-delete on every node), or break a stale lock (--force).'
            cand status 'Show whether the lock is held, by whom, for how long, and the latest fence.'
            cand list 'List the locks held under the prefix: mode, holder, since when, TTL left, latest fence.'
            cand completions 'Print the completion script for a shell: bash, zsh, fish, elvish or powershell'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rlock;run'= {
            cand -k 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand --key 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand -r 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis-file 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others'
            cand --tls-ca 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots'
            cand --tls-cert 'Client certificate (PEM) for mutual TLS; needs --tls-key'
            cand --tls-key 'The client certificate''s private key (PEM); needs --tls-cert'
            cand --prefix 'Namespace for the lock''s Redis keys'
            cand -t 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --ttl 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --limit 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)'
            cand -w 'How long to wait for a busy lock: a duration, or "forever"'
            cand --wait 'How long to wait for a busy lock: a duration, or "forever"'
            cand -E 'Exit status when the lock is busy'
            cand --conflict-exit-code 'Exit status when the lock is busy'
            cand --kill-signal 'The signal that stops the command when the lease cannot be kept (name or number)'
            cand --kill-after 'Grace between --kill-signal and SIGKILL [default: 5s, or a quarter of the TTL if less]'
            cand --max-time 'Stop the command if it runs longer than this (--kill-signal, then SIGKILL), exit 124'
            cand --min-hold 'Keep the lock at least this long after the command started, even if it finishes sooner'
            cand --jitter 'Sleep a random time in [0, DURATION) before the first attempt, to spread hosts apart'
            cand -c 'Run SHELL COMMAND with sh -c instead of COMMAND'
            cand --command 'Run SHELL COMMAND with sh -c instead of COMMAND'
            cand --tls-insecure 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)'
            cand -s 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand --shared 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand -v 'Say what happens on stderr: acquired, extended, released'
            cand --verbose 'Say what happens on stderr: acquired, extended, released'
            cand -q 'Print no warnings (errors are always printed)'
            cand --quiet 'Print no warnings (errors are always printed)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'rlock;acquire'= {
            cand -k 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand --key 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand -r 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis-file 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others'
            cand --tls-ca 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots'
            cand --tls-cert 'Client certificate (PEM) for mutual TLS; needs --tls-key'
            cand --tls-key 'The client certificate''s private key (PEM); needs --tls-cert'
            cand --prefix 'Namespace for the lock''s Redis keys'
            cand -t 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --ttl 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --limit 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)'
            cand -w 'How long to wait for a busy lock: a duration, or "forever"'
            cand --wait 'How long to wait for a busy lock: a duration, or "forever"'
            cand -E 'Exit status when the lock is busy'
            cand --conflict-exit-code 'Exit status when the lock is busy'
            cand --format 'What to print on success'
            cand --tls-insecure 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)'
            cand -s 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand --shared 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand -v 'Say what happens on stderr: acquired, extended, released'
            cand --verbose 'Say what happens on stderr: acquired, extended, released'
            cand -q 'Print no warnings (errors are always printed)'
            cand --quiet 'Print no warnings (errors are always printed)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'rlock;extend'= {
            cand -k 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand --key 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand -r 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis-file 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others'
            cand --tls-ca 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots'
            cand --tls-cert 'Client certificate (PEM) for mutual TLS; needs --tls-key'
            cand --tls-key 'The client certificate''s private key (PEM); needs --tls-cert'
            cand --prefix 'Namespace for the lock''s Redis keys'
            cand -t 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --ttl 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --limit 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)'
            cand --token 'The lease''s token, as acquire printed it (rlock run sets RLOCK_TOKEN for its command, and so does eval of what acquire --format shell prints)'
            cand --tls-insecure 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)'
            cand -s 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand --shared 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand -v 'Say what happens on stderr: acquired, extended, released'
            cand --verbose 'Say what happens on stderr: acquired, extended, released'
            cand -q 'Print no warnings (errors are always printed)'
            cand --quiet 'Print no warnings (errors are always printed)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'rlock;release'= {
            cand -k 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand --key 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand -r 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis-file 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others'
            cand --tls-ca 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots'
            cand --tls-cert 'Client certificate (PEM) for mutual TLS; needs --tls-key'
            cand --tls-key 'The client certificate''s private key (PEM); needs --tls-cert'
            cand --prefix 'Namespace for the lock''s Redis keys'
            cand -t 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --ttl 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --limit 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)'
            cand --token 'The lease''s token, as acquire printed it (rlock run sets RLOCK_TOKEN for its command, and so does eval of what acquire --format shell prints)'
            cand --tls-insecure 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)'
            cand -s 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand --shared 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand -v 'Say what happens on stderr: acquired, extended, released'
            cand --verbose 'Say what happens on stderr: acquired, extended, released'
            cand -q 'Print no warnings (errors are always printed)'
            cand --quiet 'Print no warnings (errors are always printed)'
            cand --force 'Break the lock: end every hold of it on every node, whatever its token (an operator''s action for a stuck lock; the holder, if alive, is not told)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'rlock;status'= {
            cand -k 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand --key 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters'
            cand -r 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis-file 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others'
            cand --tls-ca 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots'
            cand --tls-cert 'Client certificate (PEM) for mutual TLS; needs --tls-key'
            cand --tls-key 'The client certificate''s private key (PEM); needs --tls-cert'
            cand --prefix 'Namespace for the lock''s Redis keys'
            cand -t 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --ttl 'Lease time to live: how long the lock outlives an rlock that stops extending it'
            cand --limit 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)'
            cand --token 'Your token, if you hold a lease: status then says whether the holder is you'
            cand --format 'How to print the state'
            cand --tls-insecure 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)'
            cand -s 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand --shared 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
            cand -v 'Say what happens on stderr: acquired, extended, released'
            cand --verbose 'Say what happens on stderr: acquired, extended, released'
            cand -q 'Print no warnings (errors are always printed)'
            cand --quiet 'Print no warnings (errors are always printed)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'rlock;list'= {
            cand -r 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum'
            cand --redis-file 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others'
            cand --tls-ca 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots'
            cand --tls-cert 'Client certificate (PEM) for mutual TLS; needs --tls-key'
            cand --tls-key 'The client certificate''s private key (PEM); needs --tls-cert'
            cand --prefix 'Namespace for the lock''s Redis keys'
            cand --format 'How to print the locks'
            cand --tls-insecure 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)'
            cand -q 'Print no warnings (errors are always printed)'
            cand --quiet 'Print no warnings (errors are always printed)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'rlock;completions'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'rlock;help'= {
            cand run 'Run a command while holding the lock (what rlock alone does).'
            cand acquire 'Take the lease and print it, for scripts that release it later (rlock release).'
            cand extend 'Extend a lease you hold to a fresh TTL.'
            cand release 'Release a lease you hold (compare-and-delete on every node), or break a stale lock (--force).'
            cand status 'Show whether the lock is held, by whom, for how long, and the latest fence.'
            cand list 'List the locks held under the prefix: mode, holder, since when, TTL left, latest fence.'
            cand completions 'Print the completion script for a shell: bash, zsh, fish, elvish or powershell'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rlock;help;run'= {
        }
        &'rlock;help;acquire'= {
        }
        &'rlock;help;extend'= {
        }
        &'rlock;help;release'= {
        }
        &'rlock;help;status'= {
        }
        &'rlock;help;list'= {
        }
        &'rlock;help;completions'= {
        }
        &'rlock;help;help'= {
        }
    ]
    $completions[$command]
}
