"""The journal issue's articles, checked by reading the printed issue."""

import pytest

from rag.structure import sections_of


@pytest.fixture(scope="module")
def articles(documents):
    doc = documents["luoyang-renda-2024-03"]
    return {s.title: s for s in sections_of(doc) if s.kind == "article"}


def test_article_count(articles):
    # 16 articles listed in the table of contents, plus the cover captions
    assert len(articles) == 17
    assert "封面" in articles


@pytest.mark.parametrize(
    "title, column, author",
    [
        ("把纪律规矩转化为 政治自觉、思想自觉、行动自觉", "卷首语", None),
        ("开创我国高质量发展新局面", "特稿", "习近平"),
        ("在市委农村工作会议暨全市乡村振兴工作推进会上的讲话", "特稿", "江凌"),
        ("纪律不仅要保廉洁更要保发展", "特稿", "李保国"),
        ("洛阳市人大常委会2024年上半年工作总结暨下半年工作打算", "常委会视点", None),
        ("促良法落实 护古树常青牡丹飘香", "常委会视点", None),
        ("监督“小切口” 守护“大民生”", "常委会视点", "张艳艳"),
        ("以洛阳人大监督“样板”标准守护幸福“夕阳红”", "常委会视点", "李现森 季明炎"),
        ("加强履职管理监督 提升代表履职质效", "常委会视点", "杨振风 牛明亮"),
        ("民意民智“聚点” 有效监督“利器”", "经验交流", None),
        ("人民代表大会制度是“两个结合”的重大成果", "人大70年", None),
        ("关于汝阳县“积极应对人口老龄化,加快发展养老服务”工作的调研报告", "主任论坛", "李杰"),
        ("全省民法典宣传月活动方案来了 十大活动“典”亮美好生活", "法制宣传", None),
    ],
)
def test_titles_columns_authors(articles, title, column, author):
    assert title in articles
    assert articles[title].column == column
    assert articles[title].author == author


def _text(doc, section):
    return "".join(doc.text[a:b] for a, b in section.spans)


@pytest.mark.parametrize(
    "title, continued",
    [
        # "（下转第30页）" … "（上接第28页）全省全国的出彩度"
        ("洛阳市人大常委会2024年上半年工作总结暨下半年工作打算", "全省全国的出彩度"),
        # "（下转第32页）" … "（上接第 37 页）压实各方责任"
        ("加强履职管理监督 提升代表履职质效", "压实各方责任，从严从细审核"),
        # "（下转第34页）" … "（上接第 48 页）老护理员"
        ("关于汝阳县“积极应对人口老龄化,加快发展养老服务”工作的调研报告", "老护理员、家庭照护者"),
        # "（下转第43页）" … "（上接第44页）循。"
        ("人民代表大会制度是“两个结合”的重大成果", "以习近平同志为核心的党中央高度重视"),
    ],
)
def test_articles_continued_across_pages_are_stitched(documents, articles, title, continued):
    doc = documents["luoyang-renda-2024-03"]
    section = articles[title]
    assert len(section.spans) == 2
    assert continued in _text(doc, section)
    others = [s for t, s in articles.items() if t != title]
    assert all(continued not in _text(doc, s) for s in others)


@pytest.mark.parametrize(
    "title, pages",
    [
        ("开创我国高质量发展新局面", "4-9"),  # TOC: 4, next article 10
        ("洛阳市人大常委会2024年上半年工作总结暨下半年工作打算", "21-28, 30"),  # 21, (下转第30页)
        ("加强履职管理监督 提升代表履职质效", "37, 32"),  # 37, (下转第32页)
        ("把纪律规矩转化为 政治自觉、思想自觉、行动自觉", None),  # 卷首语: no page in the TOC
    ],
)
def test_articles_know_their_printed_pages_from_the_table_of_contents(articles, title, pages):
    assert articles[title].page_label() == pages


def test_a_journal_citation_carries_its_page_and_a_gbt_7714_reference(answerer):
    ans = answerer.ask("洛阳市登记建档的古树名木共计多少株？")
    cite = ans.citations[0]
    assert cite.page is not None and 29 <= cite.page <= (cite.page_end or cite.page) <= 30
    assert cite.reference.endswith("促良法落实 护古树常青牡丹飘香[J]. 洛阳人大, 2024(3): 29-30.")


def test_committees_of_the_joint_report(documents):
    parts = sections_of(documents["yingkou-2025-reports"])
    assert [s.place.county for s in parts] == ["鲅鱼圈区", "盖州市", "大石桥市", "老边区", "站前区", "西市区"]
    assert parts[1].title == "盖州市人大常委会：履职担当践使命 服务民生促发展"
