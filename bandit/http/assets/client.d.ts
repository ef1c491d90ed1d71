// Types of the cartwheel storefront client (client.js): window.cartwheel.
// Every method returns a Promise that never rejects.

export interface CartwheelDecision {
  /** The action to render, or null: render the page's default exactly as the control. */
  action: string | null;
  eventId: string | null;
  placement: string;
  probability?: number;
  group?: "treatment" | "holdout";
  /** The decision waits for activate(eventId) before it is learned (a pop-up not shown yet). */
  deferred?: boolean;
  /** A preview link's decision: nothing was logged or learned. */
  preview?: boolean;
  /** Present when cartwheel was not asked or did not answer in time. */
  fallback?: true;
  reason?: "error" | "timeout" | "consent" | "signed";
}

export interface CartwheelDecideOptions {
  /** A signed token the shop's backend rendered (when the shop requires signed requests). */
  token?: string;
  /** Milliseconds to wait before resolving to the fallback (default: data-timeout or 300). */
  timeout?: number;
  /** false: log now, learn only once activate() says it was shown; true: shown now. */
  activate?: boolean;
  preview?: string;
}

export interface CartwheelActivation {
  /** "activated" or "duplicate": show it; "capped": do not show it. */
  status: "activated" | "duplicate" | "capped" | "accepted" | "error" | "timeout" | "skipped";
}

export interface Cartwheel {
  readonly version: number;
  readonly endpoint: string;
  decide(placement: string, context?: Record<string, string | number | boolean | null>,
         options?: CartwheelDecideOptions): Promise<CartwheelDecision>;
  activate(eventId: string | null, options?: { timeout?: number }): Promise<CartwheelActivation>;
  consent(granted: boolean): Promise<{ consent: boolean }>;
  /** The anonymous visitor id (the cw_vid cookie), or null before consent or first use. */
  visitorId(): string | null;
  configure(options: { timeout?: number; cookieDays?: number; cookieDomain?: string;
                       token?: string | null; signed?: boolean }): void;
}

declare global {
  interface Window { cartwheel: Cartwheel; }
}
