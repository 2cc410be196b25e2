// Filter the cards by every word typed (each must appear in a card's name, description, task or
// aliases). The page starts from ?q=... so a link (or a test) can open it already filtered.
"use strict";

function applySearch(query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const cards = document.querySelectorAll("article.card");
  let shown = 0;
  for (const card of cards) {
    const text = card.dataset.search;
    const match = words.every((word) => text.includes(word));
    card.hidden = !match;
    if (match) shown += 1;
  }
  document.getElementById("shown").textContent = `${shown} of ${cards.length} datasets`;
  document.getElementById("none").hidden = shown > 0;
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("search");
  box.value = new URLSearchParams(window.location.search).get("q") || "";
  box.addEventListener("input", () => {
    applySearch(box.value);
    const url = new URL(window.location.href);
    if (box.value) url.searchParams.set("q", box.value); else url.searchParams.delete("q");
    try {
      history.replaceState(null, "", url);  // keeps the search in a copied link
    } catch (err) {
      // Some browsers refuse to rewrite file:// URLs; the filter works without it.
    }
  });
  applySearch(box.value);
});
