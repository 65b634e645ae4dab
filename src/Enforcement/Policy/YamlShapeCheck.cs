using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Gatehouse.Enforcement.Policy;

/// <summary>
/// Reads a policy file's YAML as a stream of events, before any node tree is built, and refuses shapes no policy has
/// that would otherwise take the gateway down: nesting deep enough to overflow the stack of the recursive tree
/// builder (a stack overflow cannot be caught, so a bad hot reload would end the process), keys that are themselves
/// lists or mappings (hashed recursively, so aliases make them exponential), and aliases that expand to more nodes
/// than any real policy holds. The parser is iterative, so this pass is safe whatever the input.
/// </summary>
internal static class YamlShapeCheck
{
    /// <summary>The deepest nesting of lists and mappings allowed; real policies nest about eight deep.</summary>
    public const int MaxDepth = 64;

    /// <summary>The most nodes a policy may hold once every alias is counted as the nodes it stands for.</summary>
    public const long MaxExpandedNodes = 1_000_000;

    public static void Check(string yaml, string sourcePath)
    {
        var parser = new Parser(new StringReader(yaml));
        var open = new Stack<Collection>();
        var anchors = new Dictionary<string, long>(StringComparer.Ordinal);
        while (parser.MoveNext())
        {
            var current = parser.Current!;
            long? finished = null;
            switch (current)
            {
                case Scalar scalar:
                    TakeSlot(scalar, keyAllowed: true);
                    Record(scalar.Anchor, 1);
                    finished = 1;
                    break;
                case AnchorAlias alias:
                    TakeSlot(alias, keyAllowed: false);
                    finished = anchors.GetValueOrDefault(alias.Value.Value, 1);
                    break;
                case MappingStart or SequenceStart:
                    TakeSlot(current, keyAllowed: false);
                    if (open.Count == MaxDepth)
                    {
                        Refuse(current, $"lists and mappings nest more than {MaxDepth} deep; no policy needs that.");
                    }

                    open.Push(new Collection(current is MappingStart, ((NodeEvent)current).Anchor));
                    break;
                case MappingEnd or SequenceEnd:
                    var done = open.Pop();
                    finished = done.Nodes;
                    Record(done.Anchor, done.Nodes);
                    break;
            }

            if (finished is not { } nodes)
            {
                continue;
            }

            var holder = open.TryPeek(out var parent) ? parent.Nodes += nodes : nodes;
            if (holder > MaxExpandedNodes)
            {
                Refuse(current, $"with its aliases expanded the file holds more than {MaxExpandedNodes:N0} values; no policy needs that.");
            }
        }

        void TakeSlot(ParsingEvent node, bool keyAllowed)
        {
            if (!open.TryPeek(out var parent) || !parent.IsMapping)
            {
                return;
            }

            if (parent.ExpectingKey && !keyAllowed)
            {
                Refuse(node, "a key must be plain text, not a list, a mapping or an alias.");
            }

            parent.ExpectingKey = !parent.ExpectingKey;
        }

        void Record(AnchorName anchor, long nodes)
        {
            if (!anchor.IsEmpty)
            {
                anchors[anchor.Value] = nodes;
            }
        }

        void Refuse(ParsingEvent at, string message) =>
            throw new PolicyException([$"{sourcePath}:{at.Start.Line}:{at.Start.Column}: {message}"]);
    }

    private sealed class Collection(bool isMapping, AnchorName anchor)
    {
        public bool IsMapping { get; } = isMapping;

        public AnchorName Anchor { get; } = anchor;

        public bool ExpectingKey { get; set; } = true;

        /// <summary>This collection and everything under it, aliases counted as what they stand for.</summary>
        public long Nodes { get; set; } = 1;
    }
}
