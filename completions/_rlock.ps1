
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'rlock' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'rlock'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'rlock' {
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis-file', '--redis-file', [CompletionResultType]::ParameterName, 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for mutual TLS; needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The client certificate''s private key (PEM); needs --tls-cert')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Namespace for the lock''s Redis keys')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock: a duration, or "forever"')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock: a duration, or "forever"')
            [CompletionResult]::new('-E', '-E ', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--conflict-exit-code', '--conflict-exit-code', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--kill-signal', '--kill-signal', [CompletionResultType]::ParameterName, 'The signal that stops the command when the lease cannot be kept (name or number)')
            [CompletionResult]::new('--kill-after', '--kill-after', [CompletionResultType]::ParameterName, 'Grace between --kill-signal and SIGKILL [default: 5s, or a quarter of the TTL if less]')
            [CompletionResult]::new('--max-time', '--max-time', [CompletionResultType]::ParameterName, 'Stop the command if it runs longer than this (--kill-signal, then SIGKILL), exit 124')
            [CompletionResult]::new('--min-hold', '--min-hold', [CompletionResultType]::ParameterName, 'Keep the lock at least this long after the command started, even if it finishes sooner')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Sleep a random time in [0, DURATION) before the first attempt, to spread hosts apart')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Run SHELL COMMAND with sh -c instead of COMMAND')
            [CompletionResult]::new('--command', '--command', [CompletionResultType]::ParameterName, 'Run SHELL COMMAND with sh -c instead of COMMAND')
            [CompletionResult]::new('--tls-insecure', '--tls-insecure', [CompletionResultType]::ParameterName, 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('--shared', '--shared', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a command while holding the lock (what rlock alone does).')
            [CompletionResult]::new('acquire', 'acquire', [CompletionResultType]::ParameterValue, 'Take the lease and print it, for scripts that release it later (rlock release).')
            [CompletionResult]::new('extend', 'extend', [CompletionResultType]::ParameterValue, 'Extend a lease you hold to a fresh TTL.')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Release a lease you hold (compare-and-delete on every node), or break a stale lock (--force).')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show whether the lock is held, by whom, for how long, and the latest fence.')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the locks held under the prefix: mode, holder, since when, TTL left, latest fence.')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the completion script for a shell: bash, zsh, fish, elvish or powershell')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rlock;run' {
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis-file', '--redis-file', [CompletionResultType]::ParameterName, 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for mutual TLS; needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The client certificate''s private key (PEM); needs --tls-cert')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Namespace for the lock''s Redis keys')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock: a duration, or "forever"')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock: a duration, or "forever"')
            [CompletionResult]::new('-E', '-E ', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--conflict-exit-code', '--conflict-exit-code', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--kill-signal', '--kill-signal', [CompletionResultType]::ParameterName, 'The signal that stops the command when the lease cannot be kept (name or number)')
            [CompletionResult]::new('--kill-after', '--kill-after', [CompletionResultType]::ParameterName, 'Grace between --kill-signal and SIGKILL [default: 5s, or a quarter of the TTL if less]')
            [CompletionResult]::new('--max-time', '--max-time', [CompletionResultType]::ParameterName, 'Stop the command if it runs longer than this (--kill-signal, then SIGKILL), exit 124')
            [CompletionResult]::new('--min-hold', '--min-hold', [CompletionResultType]::ParameterName, 'Keep the lock at least this long after the command started, even if it finishes sooner')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Sleep a random time in [0, DURATION) before the first attempt, to spread hosts apart')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Run SHELL COMMAND with sh -c instead of COMMAND')
            [CompletionResult]::new('--command', '--command', [CompletionResultType]::ParameterName, 'Run SHELL COMMAND with sh -c instead of COMMAND')
            [CompletionResult]::new('--tls-insecure', '--tls-insecure', [CompletionResultType]::ParameterName, 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('--shared', '--shared', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'rlock;acquire' {
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis-file', '--redis-file', [CompletionResultType]::ParameterName, 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for mutual TLS; needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The client certificate''s private key (PEM); needs --tls-cert')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Namespace for the lock''s Redis keys')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock: a duration, or "forever"')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock: a duration, or "forever"')
            [CompletionResult]::new('-E', '-E ', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--conflict-exit-code', '--conflict-exit-code', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'What to print on success')
            [CompletionResult]::new('--tls-insecure', '--tls-insecure', [CompletionResultType]::ParameterName, 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('--shared', '--shared', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'rlock;extend' {
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis-file', '--redis-file', [CompletionResultType]::ParameterName, 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for mutual TLS; needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The client certificate''s private key (PEM); needs --tls-cert')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Namespace for the lock''s Redis keys')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'The lease''s token, as acquire printed it (rlock run sets RLOCK_TOKEN for its command, and so does eval of what acquire --format shell prints)')
            [CompletionResult]::new('--tls-insecure', '--tls-insecure', [CompletionResultType]::ParameterName, 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('--shared', '--shared', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'rlock;release' {
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis-file', '--redis-file', [CompletionResultType]::ParameterName, 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for mutual TLS; needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The client certificate''s private key (PEM); needs --tls-cert')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Namespace for the lock''s Redis keys')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'The lease''s token, as acquire printed it (rlock run sets RLOCK_TOKEN for its command, and so does eval of what acquire --format shell prints)')
            [CompletionResult]::new('--tls-insecure', '--tls-insecure', [CompletionResultType]::ParameterName, 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('--shared', '--shared', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Break the lock: end every hold of it on every node, whatever its token (an operator''s action for a stuck lock; the holder, if alive, is not told)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'rlock;status' {
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The lock''s name: non-empty UTF-8, at most 1024 bytes, no control characters')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis-file', '--redis-file', [CompletionResultType]::ParameterName, 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for mutual TLS; needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The client certificate''s private key (PEM); needs --tls-cert')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Namespace for the lock''s Redis keys')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lease time to live: how long the lock outlives an rlock that stops extending it')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Your token, if you hold a lease: status then says whether the holder is you')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How to print the state')
            [CompletionResult]::new('--tls-insecure', '--tls-insecure', [CompletionResultType]::ParameterName, 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('--shared', '--shared', [CompletionResultType]::ParameterName, 'Take a shared hold: shared holders run together, an exclusive holder runs alone')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say what happens on stderr: acquired, extended, released')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'rlock;list' {
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum')
            [CompletionResult]::new('--redis-file', '--redis-file', [CompletionResultType]::ParameterName, 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system''s roots')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for mutual TLS; needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The client certificate''s private key (PEM); needs --tls-cert')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Namespace for the lock''s Redis keys')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How to print the locks')
            [CompletionResult]::new('--tls-insecure', '--tls-insecure', [CompletionResultType]::ParameterName, 'Do not verify the servers'' certificates (for tests: anyone on the path can impersonate them)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no warnings (errors are always printed)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'rlock;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'rlock;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a command while holding the lock (what rlock alone does).')
            [CompletionResult]::new('acquire', 'acquire', [CompletionResultType]::ParameterValue, 'Take the lease and print it, for scripts that release it later (rlock release).')
            [CompletionResult]::new('extend', 'extend', [CompletionResultType]::ParameterValue, 'Extend a lease you hold to a fresh TTL.')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Release a lease you hold (compare-and-delete on every node), or break a stale lock (--force).')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show whether the lock is held, by whom, for how long, and the latest fence.')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the locks held under the prefix: mode, holder, since when, TTL left, latest fence.')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the completion script for a shell: bash, zsh, fish, elvish or powershell')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rlock;help;run' {
            break
        }
        'rlock;help;acquire' {
            break
        }
        'rlock;help;extend' {
            break
        }
        'rlock;help;release' {
            break
        }
        'rlock;help;status' {
            break
        }
        'rlock;help;list' {
            break
        }
        'rlock;help;completions' {
            break
        }
        'rlock;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
