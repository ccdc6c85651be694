extension Duration {
    /// The duration in seconds, as a Double (for rates, logs and reports).
    public var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) * 1e-18
    }

    /// The duration in milliseconds, as a Double.
    public var milliseconds: Double { seconds * 1_000 }
}
