"""`pgmi completion bash|zsh|fish|powershell` and the hidden `pgmi __complete`.

The scripts are small and static: on every <Tab> they run the very program the user typed
(`pgmi`, `./dist/pgmi`, ...) as `PROG __complete WORD... CURRENT`, so the candidates
always match the installed version and the zipapp answers without any files beside it.

`__complete` speaks cobra's protocol, which the scripts decode: one candidate per line,
optionally `<TAB>description`, then a final `:<directive>` line whose bits say what the
shell should do itself (4: no file names, 16: directories only).

What is offered: subcommands; flag names; `--sslmode` values; template names for
`init --template` and `templates describe`; `ai` skills, clients and assistants; directories for
project paths. File names only where a flag takes a file (`--params-file`, `--ssl*`);
anything else gets nothing, so a <Tab> never suggests misleading files.
"""

from __future__ import annotations

import argparse
import os
import sys

from pgmilib.conn import SSLMODES  # the tuple alone: pgmilib.conn imports nothing
from pgmilib.errors import Exit
from pgmilib.output import Output

ERROR, NO_SPACE, NO_FILE, FILTER_EXT, FILTER_DIRS, KEEP_ORDER = 1, 2, 4, 8, 16, 32

TEMPLATES = ("basic", "advanced")
AI_CLIENTS = ("typescript", "python", "go", "csharp", "rust")
AI_ASSISTANTS = ("claude", "agents", "codex", "opencode", "codex-skills", "antigravity", "cursor", "copilot",
                 "windsurf", "cline", "gemini")
#: Flags whose value is a file: the shell's own file completion.
FILE_FLAGS = {"--params-file", "--sslcert", "--sslkey", "--sslrootcert"}
#: Positionals that name a project directory.
PATH_POSITIONALS = {"project_path", "target_path", "path"}


def cmd_completion(args: argparse.Namespace, out: Output) -> int:
    """Print the completion script for `args.shell` on stdout."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "pgmi"
    if prog in ("pgmi.py", "__main__.py", "") or prog.startswith("python"):
        prog = "pgmi"
    out.data(script(args.shell, prog))
    return Exit.SUCCESS


def script(shell: str, prog: str = "pgmi") -> str:
    """The completion script for one shell, registered for the command name `prog`."""
    func = "_" + "".join(ch if ch.isalnum() else "_" for ch in prog) + "_complete"
    return _SCRIPTS[shell].replace("__FUNC__", func).replace("__PROG__", prog)


def cmd_complete(args: argparse.Namespace, out: Output) -> int:
    """`pgmi __complete WORD... CURRENT`: candidate lines, then `:<directive>`."""
    from pgmilib.cli.app import build_parser

    words = list(args.words or [""])
    candidates, directive = complete(build_parser(), words[:-1], words[-1])
    lines = [f"{name}\t{desc}" if desc else name for name, desc in candidates]
    out.data("\n".join([*lines, f":{directive}"]))
    return Exit.SUCCESS


def complete(root: argparse.ArgumentParser, before: list[str], current: str) -> tuple[list[tuple[str, str]], int]:
    """Candidates (name, description) for `current`, given the words `before` it (program name excluded)."""
    parser, positionals, path = root, 0, []
    expecting: argparse.Action | None = None
    for n, word in enumerate(before):
        if path == ["ai"]:  # free words (argparse REMAINDER): its own small grammar
            return _ai(before[n:], current)
        if expecting is not None:
            expecting = None
            continue
        if word.startswith("-"):
            action = _options(parser).get(word.split("=", 1)[0])
            if action is not None and action.nargs != 0 and "=" not in word:
                expecting = action
            continue
        subs = _subcommands(parser)
        if subs and word in subs:
            parser, positionals = subs[word], 0
            path.append(word)
        else:
            positionals += 1
    if path == ["ai"]:
        return _ai([], current)
    if expecting is not None:
        return _values(expecting, path)
    if current.startswith("-"):
        flags = []
        for option, action in sorted(_options(parser).items()):
            if option.startswith("--") and option.startswith(current) and action.help != argparse.SUPPRESS:
                flags.append((option, _help(action)))
        return flags, NO_FILE
    subs = _subcommands(parser)
    if subs:
        helps = _subcommand_helps(parser)
        return [(name, helps.get(name, "")) for name in subs
                if name.startswith(current) and not name.startswith("__")], NO_FILE
    return _positional(parser, path, positionals, current)


def _values(action: argparse.Action, path: list[str]) -> tuple[list[tuple[str, str]], int]:
    """Values for the flag just typed."""
    option = max(action.option_strings, key=len)
    if option == "--sslmode":
        return [(mode, "") for mode in SSLMODES], NO_FILE
    if option == "--template":
        return [(name, "") for name in template_names()], NO_FILE
    if option == "--assistant":
        return [(name, "") for name in _ai_names("ASSISTANTS", AI_ASSISTANTS)], NO_FILE
    if action.choices:
        return [(str(choice), "") for choice in action.choices], NO_FILE
    if option in FILE_FLAGS:
        return [], 0
    return [], NO_FILE


def _positional(parser: argparse.ArgumentParser, path: list[str], index: int,
                current: str) -> tuple[list[tuple[str, str]], int]:
    if path[:1] == ["templates"] and path[1:] == ["describe"] and index == 0:
        return [(name, "") for name in template_names() if name.startswith(current)], NO_FILE
    actions = [a for a in parser._actions if not a.option_strings and a.nargs != argparse.REMAINDER]
    if index < len(actions):
        action = actions[index]
        if action.choices:
            return [(str(c), "") for c in action.choices if str(c).startswith(current)], NO_FILE
        if action.dest in PATH_POSITIONALS:
            return [], FILTER_DIRS
    return [], NO_FILE


def _ai(words: list[str], current: str) -> tuple[list[tuple[str, str]], int]:
    """`pgmi ai ...` takes free words (argparse REMAINDER): its subcommands, skills, clients, assistants."""
    if words and words[-1] == "--assistant":
        options: tuple[str, ...] = _ai_names("ASSISTANTS", AI_ASSISTANTS)
    elif current.startswith("-"):
        options = ("--assistant",) if words[:1] in (["setup"], ["check"]) else ()
    elif not words:
        options = ("skills", "skill", "contract", "client", "setup", "check")
    elif words == ["client"]:
        options = _ai_names("CLIENT_LANGUAGES", AI_CLIENTS)
    elif words == ["skill"]:
        options = _skill_names()
    else:
        options = ()
    return [(name, "") for name in options if name.startswith(current)], NO_FILE


def _ai_names(attribute: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
    """The `pgmi ai` module's own list when this build has it (one source of truth), else the spec's."""
    import importlib

    module = "pgmilib.ai.setup" if attribute == "ASSISTANTS" else "pgmilib.ai.content"
    try:
        return tuple(getattr(importlib.import_module(module), attribute))
    except (ImportError, AttributeError):
        return fallback


def _skill_names() -> tuple[str, ...]:
    try:
        from pgmilib.ai.content import list_skills

        return tuple(skill.name for skill in list_skills())
    except (ImportError, OSError, AttributeError):
        return ()


def template_names() -> list[str]:
    """The documented templates plus any template directory the build ships."""
    names = list(TEMPLATES)
    try:
        from pgmilib.resources import resource_dir

        base = resource_dir("templates")
        names += sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in names)
    except (OSError, ImportError, AttributeError, TypeError, ValueError):
        pass
    return names


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return dict(parser._option_string_actions)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subcommand_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _help(action: argparse.Action) -> str:
    return (action.help or "").split(" (")[0]


# ---------------------------------------------------------------------------------------
# The scripts. __PROG__ is the command name, __FUNC__ a shell-safe function name.
# ---------------------------------------------------------------------------------------

_BASH = r"""# bash completion for __PROG__ (pgmi completion bash); candidates come from `__PROG__ __complete`.
__FUNC__() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out directive line
    local -a words=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
    out=$("${COMP_WORDS[0]}" __complete "${words[@]}" "$cur" 2>/dev/null) || return 0
    directive="${out##*:}"
    out="${out%:*}"
    COMPREPLY=()
    if (( directive & 16 )); then
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        compopt -o filenames 2>/dev/null
        return 0
    fi
    while IFS= read -r line; do
        line="${line%%$'\t'*}"
        [[ -n "$line" && "$line" == "$cur"* ]] && COMPREPLY+=("$line")
    done <<< "$out"
    if (( ${#COMPREPLY[@]} == 0 )) && ! (( directive & 4 )); then
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        compopt -o filenames 2>/dev/null
    fi
    return 0
}
complete -F __FUNC__ __PROG__
"""

_ZSH = r"""#compdef __PROG__
# zsh completion for __PROG__ (pgmi completion zsh); candidates come from `__PROG__ __complete`.
__FUNC__() {
    local out directive line name desc
    local -a lines candidates
    out=$("${words[1]}" __complete "${(@)words[2,CURRENT-1]}" "${words[CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    directive="${lines[-1]#:}"
    lines=("${(@)lines[1,-2]}")
    if (( directive & 16 )); then
        _path_files -/
        return
    fi
    for line in "${lines[@]}"; do
        [[ -z "$line" ]] && continue
        name="${line%%$'\t'*}"
        if [[ "$line" == *$'\t'* ]]; then desc="${line#*$'\t'}"; else desc=""; fi
        candidates+=("${name//:/\\:}${desc:+:$desc}")
    done
    if (( ${#candidates} )); then
        _describe -t values '__PROG__' candidates
    elif (( ! (directive & 4) )); then
        _files
    fi
}
compdef __FUNC__ __PROG__
"""

_FISH = r"""# fish completion for __PROG__ (pgmi completion fish); candidates come from `__PROG__ __complete`.
function __FUNC__
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l out ($tokens[1] __complete $tokens[2..-1] "$current" 2>/dev/null)
    or return
    set -l directive (string replace -r '^:' '' -- $out[-1])
    if test (math "bitand($directive, 16)") -ne 0
        __fish_complete_directories "$current"
        return
    end
    set -l lines $out[1..-2]
    if test (count $out) -le 1
        if test (math "bitand($directive, 4)") -eq 0
            __fish_complete_path "$current"
        end
        return
    end
    printf '%s\n' $lines
end
complete -c __PROG__ -f -a '(__FUNC__)'
"""

_POWERSHELL = r"""# PowerShell completion for __PROG__ (pgmi completion powershell); candidates come from `__PROG__ __complete`.
Register-ArgumentCompleter -Native -CommandName '__PROG__' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $elements = @($commandAst.CommandElements | ForEach-Object { $_.ToString() })
    $words = @($elements | Select-Object -Skip 1)
    if ($wordToComplete -ne '' -and $words.Count -gt 0) { $words = @($words | Select-Object -SkipLast 1) }
    $out = @(& $elements[0] __complete @words "$wordToComplete" 2>$null)
    if ($out.Count -eq 0) { return }
    $directive = [int]($out[-1].TrimStart(':'))
    if ($directive -band 16) {
        Get-ChildItem -Directory -Path "$wordToComplete*" -ErrorAction SilentlyContinue | ForEach-Object {
            [System.Management.Automation.CompletionResult]::new($_.Name, $_.Name, 'ProviderContainer', $_.Name)
        }
        return
    }
    $out | Select-Object -SkipLast 1 | ForEach-Object {
        $name, $desc = $_ -split "`t", 2
        if ($name -like "$wordToComplete*") {
            if (-not $desc) { $desc = $name }
            [System.Management.Automation.CompletionResult]::new($name, $name, 'ParameterValue', $desc)
        }
    }
}
"""

_SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH, "powershell": _POWERSHELL}
