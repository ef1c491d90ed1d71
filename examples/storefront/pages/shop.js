// The demo shop's own page code: asks cartwheel at each placement of the page and renders the
// answer; null (cartwheel down, slow, no consent) leaves the page's default, exactly as the
// control. The exit pop-up is decided at page load (a deferred placement) and activated only
// when it is shown, on exit intent.
"use strict";
(function () {
  // the script could not load (cartwheel's own copy, cartwheel down): every slot keeps its
  // default; a shop that hosts its copy of the script never gets here
  const cartwheel = window.cartwheel || {
    decide: (placement) => Promise.resolve({ action: null, eventId: null, placement,
                                             fallback: true, reason: "error" }),
    activate: () => Promise.resolve({ status: "error" }),
  };
  const TEXT = {
    banner_brand: "Made in the Alps, repaired for life.",
    upsell_bundle: "Bundle: add the matching rain cover for EUR 24 (save 15%).",
    cross_sell: "Often bought with it: Trail bottle 1 l.",
    free_shipping: "Free shipping on this order.",
    discount_5: "5% off this order, applied at checkout.",
    discount_10: "10% off this order, applied at checkout.",
    banner_urgency: "Only 3 left in stock: order today.",
  };
  const context = {
    device: matchMedia("(max-width: 700px)").matches ? "mobile" : "desktop",
    page_type: document.body.dataset.page,
    returning: document.cookie.includes("cw_vid="),
    cart_value: document.body.dataset.page === "cart" ? 89.0 : 0.0,
  };

  function render(slot, decision) {
    slot.dataset.state = decision.fallback ? "default:" + decision.reason : "decided";
    slot.dataset.action = decision.action || "";
    if (decision.action && decision.action !== "none" && TEXT[decision.action]) {
      slot.textContent = TEXT[decision.action];
    }
  }

  const pending = [];
  for (const slot of document.querySelectorAll("main [data-placement]")) {
    pending.push(cartwheel.decide(slot.dataset.placement, context).then((d) => {
      render(slot, d);
      const incentive = document.getElementById("incentive");
      if (incentive && slot.dataset.placement === "cart" && d.action) incentive.value = d.action;
    }));
  }

  const popup = document.getElementById("exit-popup");
  let exitDecision = null;
  pending.push(cartwheel.decide("exit", context).then((d) => {
    exitDecision = d;
    popup.dataset.state = d.fallback ? "default:" + d.reason : "decided";
  }));
  Promise.all(pending).then(() => { document.body.dataset.cartwheel = "ready"; });

  // exit intent: the pointer leaves through the top of the window (or the page says so)
  async function showExit() {
    if (popup.dataset.shown || !exitDecision || !exitDecision.action ||
        exitDecision.action === "none") return;
    popup.dataset.shown = "asked";
    const { status } = await cartwheel.activate(exitDecision.eventId);
    if (status !== "activated" && status !== "duplicate") {  // capped: not shown
      popup.dataset.shown = status;
      return;
    }
    const close = document.createElement("button");
    close.type = "button";
    close.id = "exit-close";
    close.textContent = "Continue shopping";
    close.addEventListener("click", () => { popup.hidden = true; });
    const text = document.createElement("p");
    text.textContent = TEXT[exitDecision.action] || "";
    popup.replaceChildren(text, close);
    popup.dataset.action = exitDecision.action;
    popup.hidden = false;
    popup.dataset.shown = "yes";
    const incentive = document.getElementById("incentive");
    if (incentive && exitDecision.action.startsWith("discount") && !incentive.value.startsWith("d")) {
      incentive.value = exitDecision.action;
    }
  }
  document.addEventListener("mouseout", (ev) => {
    if (!ev.relatedTarget && ev.clientY <= 0) showExit();
  });
  window.shopShowExit = showExit;
})();
