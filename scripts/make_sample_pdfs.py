"""Generate the sample PDFs in ``sample_docs/``.

The PDFs are committed, so the demo and the tests never need this script; it exists so the PDFs can be
reviewed as text and rebuilt exactly. Each page carries distinct facts, which lets tests check that an answer
cites the right page. Output is deterministic: fixed creation date, fixed metadata, no random ids.

Run: ``.venv/bin/python scripts/make_sample_pdfs.py``
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF

SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "sample_docs"
# A fixed timestamp keeps re-generated files byte-identical to the committed ones.
FIXED_DATE = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Page:
    heading: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Booklet:
    filename: str
    title: str
    author: str
    subtitle: str
    pages: tuple[Page, ...]


ANDEAN_TEXTILE_FIBRES = Booklet(
    filename="andean_textile_fibres.pdf",
    title="Andean Textile Fibres",
    author="Highland Weavers Study Group",
    subtitle="A short guide to camelid fibre for spinners and weavers",
    pages=(
        Page(
            "Introduction",
            (
                "Weaving in the Andes is older than pottery. Fragments of cloth found in dry caves show that "
                "people in the highlands were spinning and weaving animal fibre more than four thousand years "
                "ago. The four South American camelids all grow fibre, but they do not grow it equally: the "
                "llama and the guanaco carry a double coat with coarse guard hairs, while the alpaca and the "
                "vicuna were valued above all for the soft undercoat that lies close to the skin.",
                "This guide follows the fibre from the animal to the loom. Each page takes one subject: the "
                "alpaca fleece, the rare vicuna fibre, how fibre is graded by its diameter, and how it is "
                "spun and dyed in highland villages. The figures quoted are typical values reported by "
                "cooperatives and fibre laboratories; individual animals vary widely with age, diet and "
                "breeding.",
            ),
        ),
        Page(
            "Alpaca Fleece",
            (
                "An adult alpaca is shorn once a year and yields between 2.3 and 4.5 kilograms of fleece, of "
                "which the blanket, the fibre from the back and sides, is the most valuable part. Alpaca "
                "fibre comes in about 22 natural colours recognised by the trade, from white and fawn to "
                "deep brown and black, so much of it is sold undyed. Unlike sheep's wool, alpaca fibre "
                "contains almost no lanolin, which is why it needs little scouring and is often tolerated by "
                "people who find wool itchy.",
                "The fibre is hollow along part of its length, and the trapped air makes alpaca garments "
                "warm for their weight. A Huacaya fleece has a fine, even crimp and is usually spun into "
                "soft, springy woollen yarns, while Suri fibre has almost no crimp and a high lustre, so it "
                "is spun into smooth worsted yarns that drape well in scarves and suiting cloth.",
            ),
        ),
        Page(
            "Vicuna Fibre",
            (
                "Vicuna fibre is the finest animal fibre in commercial use, with an average diameter of "
                "about 12.5 microns. A single vicuna yields only around 200 grams of fibre, and it can be "
                "shorn only once every two to three years. For these reasons a metre of vicuna cloth can "
                "cost more than a used car.",
                "Wild vicunas are never kept on farms. Instead they are gathered in a traditional round-up "
                "called the chaccu, in which villagers walk in a long line across the puna and guide the "
                "animals into a funnel of rope and cloth. The animals are shorn, checked and released on the "
                "same day. Trade in vicuna fibre has been regulated by international agreement since 1979, "
                "and legally sold cloth carries a label naming the country and the community that sheared "
                "the animals.",
            ),
        ),
        Page(
            "Grading by Micron",
            (
                "Fibre buyers grade alpaca mainly by its average diameter, measured in microns, because the "
                "finer the fibre, the softer it feels against the skin. Royal alpaca is the finest grade, "
                "at 19 microns or less, and makes up only a small share of each clip. Baby alpaca, despite "
                "the name, does not come from young animals: it is a grade of fibre between 19 and 22.5 "
                "microns, which can come from an adult of any age.",
                "Coarser grades, above 30 microns, go into rugs, felt and rope. Grading is done by hand on a "
                "sorting table in good daylight; an experienced sorter can judge fineness by touch to within "
                "about two microns. Many cooperatives now confirm the sorters' judgement with an optical "
                "fibre analyser, which measures thousands of fibres in a few minutes and prints a histogram "
                "of their diameters.",
            ),
        ),
        Page(
            "Spinning and Natural Dyes",
            (
                "In many highland villages yarn is still spun with a drop spindle called a pushka, which "
                "spinners carry while walking behind the herds. Yarn for weaving is usually plied, and "
                "spinners twist the final ply in the opposite direction to the singles so that the yarn "
                "hangs straight and does not kink on the loom.",
                "Traditional dyes come from plants and insects. The brightest red is made from cochineal, a "
                "small scale insect that lives on prickly pear cactus; about 70,000 dried insects are needed "
                "for one kilogram of dye. Yellow comes from the flowers and leaves of local shrubs, and "
                "indigo gives the deep blues. Dyers fix the colours with a mordant, most often alum, and "
                "they can shift cochineal from crimson to purple or orange by adding lime juice or wood "
                "ash to the dye bath.",
            ),
        ),
    ),
)

BICYCLE_MAINTENANCE = Booklet(
    filename="bicycle_maintenance_handbook.pdf",
    title="Bicycle Maintenance Handbook",
    author="Eastside Community Bike Workshop",
    subtitle="Routine care for city and touring bicycles",
    pages=(
        Page(
            "Before Every Ride",
            (
                "A quick check before riding prevents most roadside trouble. Squeeze both brake levers: "
                "they should stop well before touching the handlebar. Lift each end of the bicycle and spin "
                "the wheel to make sure it runs true and does not rub on the brake pads. Check that the "
                "quick-release levers or axle nuts are tight, and bounce the bicycle gently on the ground "
                "to listen for anything loose.",
                "The workshop teaches this routine with the short phrase ABC Quick Check: air, brakes, "
                "chain, and the quick releases. It takes under two minutes and should become a habit, in "
                "the same way that drivers glance at their mirrors. Anything that fails the check should be "
                "fixed before riding, not after.",
            ),
        ),
        Page(
            "Tyres and Punctures",
            (
                "Correct tyre pressure makes a bicycle faster and protects the rims. Most city tyres of 32 "
                "to 40 millimetres width run well between 4 and 5.5 bar, which is about 60 to 80 psi; the "
                "allowed range is printed on the sidewall of the tyre. Tyres lose pressure slowly even "
                "without a puncture, so check them with a gauge at least once a week.",
                "To repair a puncture, remove the wheel, lever one side of the tyre off the rim with two "
                "plastic tyre levers and pull out the inner tube. Find the hole by pumping a little air into "
                "the tube and listening, or by holding it under water. Roughen the area with sandpaper, "
                "spread a thin layer of vulcanising solution, wait about five minutes until it turns dull, "
                "and press the patch on firmly. Before refitting, run your fingers carefully around the "
                "inside of the tyre to find the thorn or glass that caused the puncture.",
            ),
        ),
        Page(
            "Chain Care",
            (
                "A clean, lightly oiled chain shifts smoothly and lasts far longer than a neglected one. "
                "Wipe the chain with a rag after wet rides and apply one drop of chain oil to each roller "
                "every 300 kilometres or so, then wipe off the excess, because oil left on the outside only "
                "collects grit that grinds down the teeth of the sprockets.",
                "Chains wear and stretch as the pins and rollers wear. Measure wear with a chain checker "
                "tool such as the workshop's CC-3 gauge: replace the chain when it shows 0.5 percent "
                "elongation on an 11 or 12 speed drivetrain, or 0.75 percent on older drivetrains with "
                "fewer gears. Replacing a chain in time costs little, but a badly stretched chain wears the "
                "cassette and chainrings so that all three parts must be replaced together.",
            ),
        ),
        Page(
            "Brakes",
            (
                "Rim brake pads have grooves that show how much material is left; replace the pads when the "
                "grooves have worn away, or sooner if they have hardened and squeal. Align new pads so that "
                "they hit the braking surface squarely and do not touch the tyre, with the front edge "
                "slightly closer to the rim than the rear edge. This small toe-in reduces squealing.",
                "Hydraulic disc brakes need their fluid changed, or bled, about once a year with regular "
                "use. Always use the fluid named on the brake lever, because mineral oil and DOT fluid must "
                "never be mixed: the wrong fluid destroys the seals. New disc pads and rotors need to be "
                "bedded in before they reach full power: ride at moderate speed and brake firmly to walking "
                "pace about twenty times, without coming to a complete stop.",
            ),
        ),
    ),
)

BOOKLETS = (ANDEAN_TEXTILE_FIBRES, BICYCLE_MAINTENANCE)


class _BookletPDF(FPDF):
    """FPDF with a page-number footer, so page labels in the text match the physical page."""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=9)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def render(booklet: Booklet) -> bytes:
    """Lay out one booklet: title block on page 1, one subject per page."""
    pdf = _BookletPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(booklet.title)
    pdf.set_author(booklet.author)
    pdf.set_subject(booklet.subtitle)
    pdf.set_creator("selfrag-chat scripts/make_sample_pdfs.py")
    pdf.set_producer("fpdf2")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(left=22, top=22, right=22)
    for index, page in enumerate(booklet.pages):
        pdf.add_page()
        if index == 0:
            pdf.set_font("Helvetica", style="B", size=22)
            pdf.multi_cell(0, 11, booklet.title, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", style="I", size=12)
            pdf.multi_cell(0, 7, booklet.subtitle, new_x="LMARGIN", new_y="NEXT")
            pdf.multi_cell(0, 7, booklet.author, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(8)
        pdf.set_font("Helvetica", style="B", size=15)
        pdf.multi_cell(0, 9, page.heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", size=11)
        for paragraph in page.paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        if pdf.page_no() != index + 1:
            raise RuntimeError(f"{booklet.filename}: page {index + 1} overflowed; shorten its text")
    return bytes(pdf.output())


def main() -> int:
    SAMPLE_DOCS.mkdir(parents=True, exist_ok=True)
    for booklet in BOOKLETS:
        target = SAMPLE_DOCS / booklet.filename
        target.write_bytes(render(booklet))
        print(f"wrote {target.relative_to(SAMPLE_DOCS.parent)} ({len(booklet.pages)} pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
