"""Citations as GB/T 7714-2015 references: journal article, a committee's part of a joint
report, a web page."""

from rag.reference import reference
from rag.schema import Chunk


def _chunk(**kw) -> Chunk:
    base = dict(id="x@0-1", doc_id="x", start=0, end=1, text="", title="", article=None, column=None, author=None,
                place="", places=(), year=2025, date=None, doc_type="journal_issue")
    return Chunk(**{**base, **kw})


def test_a_journal_article_with_its_author_issue_and_pages():
    entry = {"doc_type": "journal_issue", "title": "《洛阳人大》2024年第3期（总第105期）", "publisher": "洛阳市人大常委会",
             "issue": "2024年第3期（总第105期）", "year": 2024}
    chunk = _chunk(article="纪律不仅要保廉洁更要保发展", author="李保国", article_pages="17-20")
    assert reference(entry, chunk) == "李保国. 纪律不仅要保廉洁更要保发展[J]. 洛阳人大, 2024(3): 17-20."


def test_a_committees_part_of_a_joint_report_is_a_contribution():
    entry = {"doc_type": "work_report", "title": "营口市各区（市）人大常委会2025年工作报告",
             "publisher": "营口市各区（市）人大常委会", "place": {"city": "营口市"}, "year": 2025}
    chunk = _chunk(article="盖州市人大常委会：履职担当践使命 服务民生促发展", doc_type="work_report")
    assert reference(entry, chunk) == ("盖州市人大常委会. 履职担当践使命 服务民生促发展[R]//营口市各区（市）人大常委会. "
                                       "营口市各区（市）人大常委会2025年工作报告. 营口市: 营口市各区（市）人大常委会, 2025.")


def test_a_web_page_with_its_date_and_address():
    entry = {"doc_type": "news_article", "title": "代表视察", "publisher": "洛阳市人大常委会", "date": "2025-06-18",
             "url": "http://www.lyrd.gov.cn/a/1.html"}
    ref = reference(entry, _chunk(doc_type="news_article"))
    assert ref.startswith("洛阳市人大常委会. 代表视察[EB/OL]. (2025-06-18)[") and ref.endswith("]. http://www.lyrd.gov.cn/a/1.html.")


def test_missing_fields_leave_no_empty_punctuation():
    entry = {"doc_type": "work_report", "title": "工作报告", "place": {}}
    assert reference(entry, _chunk(doc_type="work_report", year=None)) == "[出版者不详]. 工作报告[R]. [出版地不详]: [出版者不详]."
    journal = {"doc_type": "journal_issue", "title": "《洛阳人大》", "publisher": "洛阳市人大常委会"}
    assert reference(journal, _chunk(article="题名")) == "洛阳市人大常委会. 题名[J]. 洛阳人大."
    unknown = {"doc_type": "news_article", "title": "通讯", "original": "originals/x.pdf"}
    assert reference(unknown, _chunk(doc_type="news_article")).startswith("佚名. 通讯[Z].")
