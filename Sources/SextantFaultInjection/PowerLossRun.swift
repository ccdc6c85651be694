import SextantSupport

/// Many power cuts: first the workload once without a cut, to count its file
/// operations; then each trial cuts after a seeded-random operation (or, when
/// `exhaustive`, after every one in turn), cycling through the cut variants.
package struct PowerLossRun: Sendable {
    package var trials: Int
    package var seed: UInt64
    package var steps: Int
    package var variants: [FaultInjectionFileSystem.CutVariant]
    package var exhaustive: Bool

    package init(trials: Int, seed: UInt64, steps: Int, variants: [FaultInjectionFileSystem.CutVariant] = FaultInjectionFileSystem.CutVariant.allCases,
                 exhaustive: Bool = false) {
        precondition(trials > 0 && steps > 0 && !variants.isEmpty, "a run has trials, steps and variants")
        self.trials = trials
        self.seed = seed
        self.steps = steps
        self.variants = variants
        self.exhaustive = exhaustive
    }

    package struct Summary: Sendable {
        package var trials = 0
        /// Operations the uncut workload makes (crash points range over them).
        package var workloadOperations = 0
        package var perVariant: [FaultInjectionFileSystem.CutVariant: Int] = [:]
        /// Acknowledged steps summed over trials: how much each cut had to keep.
        package var acknowledgedSteps = 0
        package var failures: [(trial: Int, cutAfter: Int, variant: FaultInjectionFileSystem.CutVariant, problems: [String])] = []
    }

    /// Runs the trials; `progress` hears each one as it ends.
    package func run(progress: (Int, PowerLossTrial, PowerLossTrial.Outcome) -> Void = { _, _, _ in }) async -> Summary {
        var summary = Summary()
        let whole = await PowerLossTrial(seed: seed, steps: steps, cutAfterOperations: nil, variant: .dropUnsynced).run()
        summary.workloadOperations = whole.operations
        if !whole.problems.isEmpty {
            summary.failures.append((0, whole.operations, .dropUnsynced, whole.problems))
        }
        var random = SplitMix64(seed: seed &* 0x9E37_79B9)
        let count = exhaustive ? whole.operations * variants.count : trials
        for index in 0..<count {
            let variant = variants[index % variants.count]
            let cut = exhaustive ? index / variants.count : Int(random.next() % UInt64(max(1, whole.operations)))
            let trial = PowerLossTrial(seed: seed, steps: steps, cutAfterOperations: cut, variant: variant)
            let outcome = await trial.run()
            summary.trials += 1
            summary.perVariant[variant, default: 0] += 1
            summary.acknowledgedSteps += outcome.acknowledgedSteps
            if !outcome.problems.isEmpty { summary.failures.append((index + 1, cut, variant, outcome.problems)) }
            progress(index + 1, trial, outcome)
        }
        return summary
    }
}
