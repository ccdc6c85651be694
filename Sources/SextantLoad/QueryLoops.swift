import NIOCore
import NIOPosix
import SextantConcurrency

/// Event loops for the load generator's query clients. They stand in for the
/// search API, whose loops ask for short scheduler slices (`LatencySensitive`),
/// so theirs do too; the HTTP client's shared loops (ChromaDB's target) alike.
public enum QueryLoops {
    public static let group: MultiThreadedEventLoopGroup = {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: min(2, System.coreCount))
        mark(group)
        return group
    }()

    public static func mark(_ group: any EventLoopGroup) {
        for loop in group.makeIterator() { loop.execute { LatencySensitive.markCurrentThread() } }
    }
}
